process CHECK_INPUTS {
    tag "samplesheets"
    label 'process_single'

    input:
    path fasta
    path fai                // [] when the genome has no .fai yet: it is built here
    path mappability
    path blacklist          // [] when not given
    path bulk_samplesheet, stageAs: 'input/bulk_samplesheet.csv'
    path sc_samplesheet  , stageAs: 'input/sc_samplesheet.csv'
    path validated_params   // only orders this task after parameter validation

    output:
    path "${fasta}.fai"                , emit: fai
    path "checked/bulk_samplesheet.csv", emit: bulk_samplesheet
    path "checked/sc_samplesheet.csv"  , emit: sc_samplesheet
    path "checked/inputs.json"         , emit: summary
    path "versions.yml"                , emit: versions

    script:
    def bl = blacklist ? "--blacklist ${blacklist}" : ''
    """
    scfan check-inputs \\
        --genome ${fasta} \\
        --mappability ${mappability} \\
        ${bl} \\
        --bulk-samplesheet input/bulk_samplesheet.csv \\
        --sc-samplesheet input/sc_samplesheet.csv \\
        --outdir checked
    scfan versions --process "${task.process}" > versions.yml
    """
}
