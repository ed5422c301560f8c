process SC_MERGE_ACTIVITY {
    tag "${shards instanceof List ? shards.size() : 1} shard(s)"
    label 'process_low'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

    input:
    path shards, stageAs: 'shards/*'

    output:
    path "tf_activity.h5ad", emit: activity
    path "versions.yml"    , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    scfan sc merge-activity ${args} --out tf_activity.h5ad ${shards}
    scfan versions --process "${task.process}" > versions.yml
    """

    stub:
    """
    touch tf_activity.h5ad
    scfan versions --process "${task.process}" > versions.yml
    """
}
