process SC_SPLIT_FRAGMENTS {
    tag "${meta.id}: ${n_shards} shards"
    label 'process_medium'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

    input:
    tuple val(meta), path(fragments), path(tbi), path(cells)   // one sample's <sample>.fragments.tsv.gz (+ .tbi)
    val n_shards

    output:
    path "split/shard_*/*", emit: fragments   // split/shard_<i>_of_<n>/<sample>.fragments.tsv.gz (+ .tbi)
    path "versions.yml"   , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    scfan sc split-fragments \\
        --cells ${cells} \\
        --fragments ${meta.id}=${fragments} \\
        --shards ${n_shards} \\
        ${args} \\
        --out-dir split
    scfan versions --process "${task.process}" > versions.yml
    """

    stub:
    """
    for i in \$(seq 1 ${n_shards}); do
        d=split/shard_\${i}_of_${n_shards}
        mkdir -p \$d
        touch \$d/${meta.id}.fragments.tsv.gz \$d/${meta.id}.fragments.tsv.gz.tbi
    done
    scfan versions --process "${task.process}" > versions.yml
    """
}
