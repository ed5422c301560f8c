process BULK_INTERPRET {
    tag "${meta.id}"
    label 'process_medium'
    label 'process_gpu'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

    input:
    tuple val(meta), path(model), path(windows), path(atac)
    path fasta
    path fai
    path mappability

    output:
    tuple val(meta), path("interpret/summary.tsv"), emit: summary
    tuple val(meta), path("interpret/motifs.tsv") , emit: motifs
    tuple val(meta), path("interpret")            , emit: results   // the whole folder: tables, logos/, tracks/
    path "versions.yml"                           , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''   // --n-windows, --seed and --device come from conf/modules.config
    prefix = task.ext.prefix ?: "${meta.id}"   // names nothing: the outputs are published under interpret/<meta.id>/
    """
    scfan bulk interpret \\
        --model ${model} \\
        --windows ${windows} \\
        --genome ${fasta} \\
        --atac ${atac} \\
        --mappability ${mappability} \\
        --threads ${task.cpus} \\
        ${args} \\
        --outdir interpret
    scfan versions --process "${task.process}" > versions.yml
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p interpret/logos interpret/tracks
    printf 'tf\\tpart\\tn_windows\\ttop_motif\\ttop_jaspar_id\\ttop_jaspar_name\\ttop_q_value\\town_motif_recovered\\tbest_own_q_value\\taccessibility_share\\tattribution_sum\\tnote\\n' > interpret/summary.tsv
    printf 'tf\\tpart\\tmotif\\tn_seqlets\\tlength\\tconsensus\\tjaspar_id\\tjaspar_name\\tq_value\\trelation\\town_family\\tsecond_match\\tnote\\n' > interpret/motifs.tsv
    touch interpret/filters.tsv interpret/attributions.npz interpret/interpret.json
    scfan versions --process "${task.process}" > versions.yml
    """
}
