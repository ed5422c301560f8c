process BULK_EVALUATE {
    tag "${meta.id}"
    label 'process_low'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

    input:
    tuple val(meta), path(model), path(windows), path(atac)
    path fasta
    path fai
    path mappability

    output:
    tuple val(meta), path("evaluate/metrics.tsv"), emit: metrics
    tuple val(meta), path("evaluate/*.png")      , emit: plots
    path "versions.yml"                          , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"   // names nothing: the outputs are published under bulk/<meta.id>/
    """
    scfan bulk evaluate \\
        --model ${model} \\
        --windows ${windows} \\
        --genome ${fasta} \\
        --atac ${atac} \\
        --mappability ${mappability} \\
        --threads ${task.cpus} \\
        ${args} \\
        --outdir evaluate
    scfan versions --process "${task.process}" > versions.yml
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p evaluate
    touch evaluate/metrics.tsv evaluate/roc.png evaluate/pr.png
    scfan versions --process "${task.process}" > versions.yml
    """
}
