process SC_TRACKS {
    tag "${meta.id}"
    label 'process_medium'
    label 'process_gpu'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

    input:
    tuple val(meta), path(clusters)
    path cells
    tuple val(model_names), path(models, stageAs: 'models/model*.pt')
    tuple val(samples), path(fragments, stageAs: 'fragments/*')   // <sample>.fragments.tsv.gz (+ .tbi)
    path fasta
    path fai
    path mappability

    output:
    tuple val(meta), path("tracks"), emit: tracks
    path "versions.yml"            , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"   // names nothing: the tracks are published as analysis/tracks/
    def model_files = models instanceof List ? models : [models]
    def model_args = [model_names, model_files].transpose().collect { name, f -> "--model ${name}=${f}" }.join(' ')
    def fragment_args = samples.collect { s -> "--fragments ${s}=fragments/${s}.fragments.tsv.gz" }.join(' ')
    """
    scfan sc tracks \\
        --cells ${cells} \\
        --clusters ${clusters} \\
        ${model_args} \\
        ${fragment_args} \\
        --genome ${fasta} \\
        --mappability ${mappability} \\
        --threads ${task.cpus} \\
        ${args} \\
        --out-dir tracks
    scfan versions --process "${task.process}" > versions.yml
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p tracks
    touch tracks/tracks.txt
    scfan versions --process "${task.process}" > versions.yml
    """
}
