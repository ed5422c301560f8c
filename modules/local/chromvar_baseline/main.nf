process CHROMVAR_BASELINE {
    tag "${meta.id}"
    label 'process_medium'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

    input:
    tuple val(meta), path(cells)   // cells × peaks counts from SC_INGEST / SC_MERGE
    path fasta
    path fai
    path activity                  // tf_activity.h5ad: the TFs the models predict (var['tf'])
    path motif_table               // TSV tf, jaspar_id (the simulator's tfs.tsv) or [] to look TFs up by name

    output:
    tuple val(meta), path("chromvar/${prefix}.chromvar.h5ad"), emit: chromvar
    path "versions.yml"                                      , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    def table = motif_table ? "--motif-table ${motif_table}" : ''
    """
    scfan sc chromvar \\
        --cells ${cells} \\
        --genome ${fasta} \\
        --motifs-from-activity ${activity} \\
        ${table} \\
        --threads ${task.cpus} \\
        ${args} \\
        --out chromvar/${prefix}.chromvar.h5ad
    scfan versions --process "${task.process}" > versions.yml
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p chromvar
    touch chromvar/${prefix}.chromvar.h5ad
    scfan versions --process "${task.process}" > versions.yml
    """
}
