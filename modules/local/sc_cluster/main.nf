process SC_CLUSTER {
    tag "${meta.id}"
    label 'process_medium'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

    input:
    tuple val(meta), path(matrix, stageAs: 'input/*'), path(diff_matrix, stageAs: 'diff/*')  // diff: [] for none
    path labels                                                                               // [] for none

    output:
    tuple val(meta), path("${prefix}")                     , emit: analysis
    tuple val(meta), path("${prefix}/clusters.tsv")        , emit: clusters
    tuple val(meta), path("${prefix}/differential_tfs.tsv"), emit: differential
    path "versions.yml"                                    , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    def diff = diff_matrix ? "--diff-matrix ${diff_matrix}" : ''
    def lab = labels ? "--labels ${labels}" : ''
    """
    scfan sc cluster \\
        --matrix ${matrix} \\
        ${diff} \\
        ${lab} \\
        --threads ${task.cpus} \\
        ${args} \\
        --out-dir ${prefix}
    scfan versions --process "${task.process}" > versions.yml
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p ${prefix}
    touch ${prefix}/clusters.tsv ${prefix}/differential_tfs.tsv ${prefix}/clustered.h5ad ${prefix}/cluster.json
    scfan versions --process "${task.process}" > versions.yml
    """
}
