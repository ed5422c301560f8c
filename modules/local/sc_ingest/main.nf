process SC_INGEST {
    tag "${meta.id}"
    label 'process_medium'

    input:
    tuple val(meta), path(data, stageAs: 'data/*')   // fragments(+tbi) | bam(+bai) | counts (+peaks, barcodes)
    path peaks
    path fai

    output:
    tuple val(meta), path("${prefix}.cells.h5ad"), emit: cells
    // the sample's fragments under a unique name, for per-cell inference (fragments inputs only)
    tuple val(meta), path("${prefix}.fragments.tsv.gz"), path("${prefix}.fragments.tsv.gz.tbi"), emit: fragments, optional: true
    path "versions.yml"                           , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    // Rewrite the sample's samplesheet row with the staged file names.
    def staged = meta.columns.collectEntries { col, name -> [col, "data/${name}"] }
    def header = (['sample'] + staged.keySet() + (meta.barcode_tag ? ['barcode_tag'] : [])).join(',')
    def row = ([meta.id] + staged.values() + (meta.barcode_tag ? [meta.barcode_tag] : [])).join(',')
    def frag = meta.columns.fragments ?: ''
    """
    printf '%s\\n%s\\n' '${header}' '${row}' > staged_sc_samplesheet.csv
    scfan sc ingest \\
        --samplesheet staged_sc_samplesheet.csv \\
        --sample ${meta.id} \\
        --peaks ${peaks} \\
        --chrom-sizes ${fai} \\
        ${args} \\
        --out ${prefix}.cells.h5ad
    if [[ -n '${frag}' && -e 'data/${frag}.tbi' ]]; then
        ln -s 'data/${frag}' '${prefix}.fragments.tsv.gz'
        ln -s 'data/${frag}.tbi' '${prefix}.fragments.tsv.gz.tbi'
    fi
    scfan versions --process "${task.process}" > versions.yml
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    def frag = meta.columns.fragments ?: ''
    """
    touch ${prefix}.cells.h5ad
    if [[ -n '${frag}' ]]; then
        touch ${prefix}.fragments.tsv.gz ${prefix}.fragments.tsv.gz.tbi
    fi
    scfan versions --process "${task.process}" > versions.yml
    """
}
