process SC_PREDICT {
    tag "shard ${shard}"
    label 'process_medium'
    label 'process_gpu'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

    input:
    // the shard's fragments: <sample>.fragments.tsv.gz (+ .tbi), the whole files or those split for this shard
    tuple val(shard), path(cells), val(samples), path(fragments, stageAs: 'fragments/*')
    tuple val(model_names), path(models, stageAs: 'models/model*.pt')
    path fasta
    path fai
    path mappability

    output:
    path "activity_shard_*.h5ad", emit: activity   // named by scfan (scfan.sc.shards.activity_file_name)
    path "versions.yml"         , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def model_files = models instanceof List ? models : [models]
    def model_args = [model_names, model_files].transpose().collect { name, f -> "--model ${name}=${f}" }.join(' ')
    def fragment_args = samples.collect { s -> "--fragments ${s}=fragments/${s}.fragments.tsv.gz" }.join(' ')
    """
    scfan sc predict \\
        --cells ${cells} \\
        ${model_args} \\
        ${fragment_args} \\
        --genome ${fasta} \\
        --mappability ${mappability} \\
        --shard ${shard} \\
        --threads ${task.cpus} \\
        ${args} \\
        --out .
    scfan versions --process "${task.process}" > versions.yml
    """

    stub:
    // a stand-in for the file `scfan sc predict --out .` names (scfan.sc.shards.activity_file_name)
    def (i, n) = shard.tokenize('/')
    """
    touch activity_shard_${i}_of_${n}.h5ad
    scfan versions --process "${task.process}" > versions.yml
    """
}
