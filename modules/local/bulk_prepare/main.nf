process BULK_PREPARE {
    tag "${meta.id}"
    label 'process_medium'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

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
    def peak_args = [tfs, peaks instanceof List ? peaks : [peaks]].transpose()
        .collect { tf, pk -> "--peaks '${tf}=${pk}'" }.join(' ')
    def motif_args = [tfs, motifs].transpose().findAll { _tf, motif -> motif }
        .collect { tf, motif -> "--motif '${tf}=${motif}'" }.join(' ')
    """
    scfan bulk prepare \\
        --line ${meta.id} \\
        --atac ${atac} \\
        ${peak_args} \\
        ${motif_args} \\
        --genome ${fasta} \\
        --mappability ${mappability} \\
        ${bl} \\
        --threads ${task.cpus} \\
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
