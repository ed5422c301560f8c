process BULK_EVALUATE {
    tag "${meta.id}"
    label 'process_low'

    input:
    tuple val(meta), path(model), path(windows), path(atac)
    path fasta
    path fai
    path mappability

    output:
    tuple val(meta), path("evaluate/metrics.tsv"), emit: metrics
    tuple val(meta), path("evaluate/*.png")      , emit: plots
    path "versions.yml"                          , emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    scfan bulk evaluate \\
        --model ${model} \\
        --windows ${windows} \\
        --genome ${fasta} \\
        --atac ${atac} \\
        --mappability ${mappability} \\
        ${args} \\
        --outdir evaluate
    scfan versions --process "${task.process}" > versions.yml
    """
}
