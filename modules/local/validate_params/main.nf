process VALIDATE_PARAMS {
    tag "nextflow_schema.json"
    label 'process_single'
    // The params file is written anew by every launch: hash its content, so -resume keeps the whole run cached.
    cache 'deep'

    input:
    path params_json, stageAs: 'params_input.json'
    path schema

    output:
    path "params.json" , emit: params
    path "versions.yml", emit: versions

    script:
    """
    scfan validate-params params_input.json --schema ${schema} --base-dir '${workflow.launchDir}'
    cp params_input.json params.json
    scfan versions --process "${task.process}" > versions.yml
    """
}
