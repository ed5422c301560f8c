process SC_INGEST {
    tag "${meta.id}"
    label 'process_medium'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

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
    // the sample's files as staged (data/<name>): one option per samplesheet column
    def option = [fragments: '--fragments', bam: '--bam', counts: '--counts', peaks: '--count-peaks',
                  barcodes: '--barcodes', whitelist: '--whitelist']
    def file_args = meta.columns.collect { col, name -> "${option[col]} 'data/${name}'" }.join(' ')
    def tag = meta.barcode_tag ? "--barcode-tag ${meta.barcode_tag}" : ''
    def frag = meta.columns.fragments ?: ''
    """
    scfan sc ingest \\
        --sample ${meta.id} \\
        ${file_args} \\
        ${tag} \\
        --peaks ${peaks} \\
        --chrom-sizes ${fai} \\
        --threads ${task.cpus} \\
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
