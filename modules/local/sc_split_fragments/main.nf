process SC_SPLIT_FRAGMENTS {
    tag "${sample}: ${n_shards} shards"
    label 'process_medium'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

    input:
    // one sample's fragments (+ .tbi); the sample name is the one its cells carry in the cells file (<sample>#<barcode>),
    // so the files it writes, <sample>.fragments.tsv.gz, are named after it and take no prefix
    tuple val(sample), path(fragments), path(tbi), path(cells)
    val n_shards

    output:
    path "split/*/*", emit: fragments   // split/<shard>/<sample>.fragments.tsv.gz (+ .tbi) and shard.txt (i/n)
    path "versions.yml"   , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    scfan sc split-fragments \\
        --cells ${cells} \\
        --fragments ${sample}=${fragments} \\
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
        touch \$d/${sample}.fragments.tsv.gz \$d/${sample}.fragments.tsv.gz.tbi
        echo "\${i}/${n_shards}" > \$d/shard.txt
    done
    scfan versions --process "${task.process}" > versions.yml
    """
}
