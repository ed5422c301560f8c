process SC_SPLIT_FRAGMENTS {
    tag "${n_shards} shards"
    label 'process_medium'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

    input:
    path cells
    tuple val(samples), path(fragments, stageAs: 'fragments/*')   // <sample>.fragments.tsv.gz (+ .tbi)
    val n_shards

    output:
    path "split/shard_*/*", emit: fragments   // split/shard_<i>_of_<n>/<sample>.fragments.tsv.gz (+ .tbi)
    path "versions.yml"   , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def fragment_args = samples.collect { s -> "--fragments ${s}=fragments/${s}.fragments.tsv.gz" }.join(' ')
    """
    scfan sc split-fragments \\
        --cells ${cells} \\
        ${fragment_args} \\
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
        for s in ${samples.join(' ')}; do
            touch \$d/\$s.fragments.tsv.gz \$d/\$s.fragments.tsv.gz.tbi
        done
    done
    scfan versions --process "${task.process}" > versions.yml
    """
}
