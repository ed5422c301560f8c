process BULK_TRAIN_MODEL {
    tag "${meta.id}"
    label 'process_medium'
    label 'process_gpu'

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

    script:
    def args = task.ext.args ?: ''
    def device = params.gpu ? 'cuda' : 'auto'
    """
    scfan bulk train \\
        --windows ${windows} \\
        --genome ${fasta} \\
        --atac ${atac} \\
        --mappability ${mappability} \\
        --device ${device} \\
        --threads ${task.cpus} \\
        ${args} \\
        --outdir train
    scfan versions --process "${task.process}" > versions.yml
    """
}
