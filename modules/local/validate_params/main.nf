process VALIDATE_PARAMS {
    tag "nextflow_schema.json"
    label 'process_single'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config
    // The params file is written anew by every launch: hash its content, so -resume keeps the whole run cached.
    cache 'deep'

    input:
    path params_json, stageAs: 'params_input.json'
    path schema
    val base_dir            // a String: a Path here would hash the folder's mtime and defeat -resume

    output:
    path "params.json" , emit: params
    path "versions.yml", emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    """
    scfan validate-params params_input.json --schema ${schema} --base-dir '${base_dir}'
    cp params_input.json params.json
    scfan versions --process "${task.process}" > versions.yml
    """

    stub:
    // The real check: it needs no data, and a dry run is where a wrong parameter should show first.
    """
    scfan validate-params params_input.json --schema ${schema} --base-dir '${base_dir}'
    cp params_input.json params.json
    scfan versions --process "${task.process}" > versions.yml
    """
}
