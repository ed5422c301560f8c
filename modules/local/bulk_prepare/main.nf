process BULK_PREPARE {
    tag "${meta.id}"
    label 'process_medium'

    input:
    tuple val(meta), val(tfs), val(motifs), path(peaks, stageAs: 'peaks/??/*'), path(atac)
    path fasta
    path fai
    path mappability
    path blacklist          // [] when not given

    output:
    tuple val(meta), path("prepare/windows.parquet"), emit: windows
    path "prepare/prepare.json"                      , emit: summary
    path "versions.yml"                              , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"   // names nothing: the outputs are published under bulk/<meta.id>/
    def bl = blacklist ? "--blacklist ${blacklist}" : ''
    def rows = [tfs, motifs, peaks instanceof List ? peaks : [peaks]].transpose()
        .collect { tf, motif, pk -> "${meta.id},${tf},${pk},${atac},${motif ?: ''}" }
        .join('\n')
    """
    cat > staged_bulk_samplesheet.csv <<'CSV'
line,tf,peaks,atac,motif
${rows}
CSV
    scfan bulk prepare \\
        --samplesheet staged_bulk_samplesheet.csv \\
        --line ${meta.id} \\
        --genome ${fasta} \\
        --mappability ${mappability} \\
        ${bl} \\
        ${args} \\
        --outdir prepare
    scfan versions --process "${task.process}" > versions.yml
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p prepare
    touch prepare/windows.parquet prepare/prepare.json
    scfan versions --process "${task.process}" > versions.yml
    """
}
