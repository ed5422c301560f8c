process BULK_TRAIN_MODEL {
    tag "${meta.id}"
    label 'process_medium'
    label 'process_gpu'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

    input:
    tuple val(meta), path(windows), path(atac)
    path fasta
    path fai
    path mappability

    output:
    tuple val(meta), path("train/model.pt"), emit: model
    path "train/train_log.tsv"             , emit: log
    path "train/train.json"                , emit: summary
    path "versions.yml"                    , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''   // --device comes from conf/modules.config (params.gpu)
    prefix = task.ext.prefix ?: "${meta.id}"   // names nothing: the outputs are published under bulk/<meta.id>/
    """
    scfan bulk train \\
        --windows ${windows} \\
        --genome ${fasta} \\
        --atac ${atac} \\
        --mappability ${mappability} \\
        --threads ${task.cpus} \\
        ${args} \\
        --outdir train
    scfan versions --process "${task.process}" > versions.yml
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p train
    touch train/model.pt train/train_log.tsv train/train.json
    scfan versions --process "${task.process}" > versions.yml
    """
}
