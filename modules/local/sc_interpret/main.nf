process SC_INTERPRET {
    tag "${meta.id}"
    label 'process_medium'
    label 'process_gpu'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

    input:
    tuple val(meta), path(clusters), path(differential)   // `sc cluster`'s clusters.tsv and differential_tfs.tsv
    path cells
    tuple val(model_names), path(models, stageAs: 'models/model*.pt')
    tuple val(samples), path(fragments, stageAs: 'fragments/*')   // <sample>.fragments.tsv.gz (+ .tbi)
    path fasta
    path fai
    path mappability

    output:
    tuple val(meta), path("interpret/clusters.tsv"), emit: summary
    tuple val(meta), path("interpret")             , emit: results   // the whole folder: tables, tracks/
    path "versions.yml"                            , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''   // --top-tfs, --n-windows, --max-candidates, --seed, --device: conf/modules.config
    prefix = task.ext.prefix ?: "${meta.id}"   // names nothing: the folder is published as analysis/interpret/
    def model_files = models instanceof List ? models : [models]
    def model_args = [model_names, model_files].transpose().collect { name, f -> "--model ${name}=${f}" }.join(' ')
    def fragment_args = samples.collect { s -> "--fragments ${s}=fragments/${s}.fragments.tsv.gz" }.join(' ')
    """
    scfan sc interpret \\
        --cells ${cells} \\
        --clusters ${clusters} \\
        --differential ${differential} \\
        ${model_args} \\
        ${fragment_args} \\
        --genome ${fasta} \\
        --mappability ${mappability} \\
        --threads ${task.cpus} \\
        ${args} \\
        --out-dir interpret
    scfan versions --process "${task.process}" > versions.yml
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p interpret/tracks
    printf 'cluster\\tfeature\\tmodel\\ttf\\tn_windows\\tmean_probability\\taccessibility_share\\tn_instances\\tn_own_motif_instances\\ttop_instance_motifs\\n' > interpret/clusters.tsv
    printf 'cluster\\tfeature\\twindow\\tstart\\tend\\tattribution\\tjaspar_id\\tjaspar_name\\tp_value\\trelation\\n' > interpret/instances.tsv
    touch interpret/attributions.npz interpret/interpret.json
    scfan versions --process "${task.process}" > versions.yml
    """
}
