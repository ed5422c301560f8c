process SC_INGEST {
    tag "${meta.id}"
    label 'process_medium'

    input:
    tuple val(meta), path(data, stageAs: 'data/*')   // fragments(+tbi) | bam(+bai) | counts (+peaks, barcodes)
    path peaks
    path fai

    output:
    tuple val(meta), path("${meta.id}.cells.h5ad"), emit: cells
    // the sample's fragments under a unique name, for per-cell inference (fragments inputs only)
    tuple val(meta), path("${meta.id}.fragments.tsv.gz"), path("${meta.id}.fragments.tsv.gz.tbi"), emit: fragments, optional: true
    path "versions.yml"                           , emit: versions

    script:
    def args = task.ext.args ?: ''
    // Rewrite the sample's samplesheet row with the staged file names.
    def staged = meta.columns.collectEntries { col, name -> [col, "data/${name}"] }
    def header = (['sample'] + staged.keySet() + (meta.barcode_tag ? ['barcode_tag'] : [])).join(',')
    def row = ([meta.id] + staged.values() + (meta.barcode_tag ? [meta.barcode_tag] : [])).join(',')
    def frag = meta.columns.fragments
    def link_fragments = frag ? "if [[ -e 'data/${frag}.tbi' ]]; then ln -s 'data/${frag}' '${meta.id}.fragments.tsv.gz'; ln -s 'data/${frag}.tbi' '${meta.id}.fragments.tsv.gz.tbi'; fi" : ''
    """
    printf '%s\\n%s\\n' '${header}' '${row}' > staged_sc_samplesheet.csv
    scfan sc ingest \\
        --samplesheet staged_sc_samplesheet.csv \\
        --sample ${meta.id} \\
        --peaks ${peaks} \\
        --chrom-sizes ${fai} \\
        ${args} \\
        --out ${meta.id}.cells.h5ad
    ${link_fragments}
    scfan versions --process "${task.process}" > versions.yml
    """
}
