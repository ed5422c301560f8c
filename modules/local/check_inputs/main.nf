process CHECK_INPUTS {
    tag "samplesheets"
    label 'process_single'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

    input:
    path fasta
    path fai                // [] when the genome has no .fai yet: it is built here
    path mappability
    path blacklist          // [] when not given
    path bulk_samplesheet, stageAs: 'input/bulk_samplesheet.csv'
    path sc_samplesheet  , stageAs: 'input/sc_samplesheet.csv'
    val validated           // true once VALIDATE_PARAMS passed: orders this task after it; a value, not the
                            // params file, so changing an unrelated parameter keeps its -resume cache

    output:
    path "${fasta}.fai"                , emit: fai
    path "checked/bulk_samplesheet.csv", emit: bulk_samplesheet
    path "checked/sc_samplesheet.csv"  , emit: sc_samplesheet
    path "checked/inputs.json"         , emit: summary
    path "versions.yml"                , emit: versions

    when:
    task.ext.when == null || task.ext.when

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

    stub:
    // The samplesheets as given, their relative file paths made absolute against the sheet's folder (as
    // `scfan check-inputs` writes them), so that the per-line and per-sample fan-out finds the files.
    """
    mkdir -p checked
    [[ -e ${fasta}.fai ]] || touch ${fasta}.fai
    absolute_paths() {
        awk -F, -v OFS=, -v dir="\$(dirname "\$(readlink -f "\$1")")" '
            NR == 1 { for (i = 1; i <= NF; i++) is_file[i] = \$i ~ /^(peaks|atac|fragments|bam|counts|barcodes|whitelist)\$/; print; next }
            { for (i = 1; i <= NF; i++) if (is_file[i] && \$i != "" && substr(\$i, 1, 1) != "/" && !index(\$i, "://")) \$i = dir "/" \$i; print }
        ' "\$1"
    }
    absolute_paths input/bulk_samplesheet.csv > checked/bulk_samplesheet.csv
    absolute_paths input/sc_samplesheet.csv > checked/sc_samplesheet.csv
    echo '{}' > checked/inputs.json
    scfan versions --process "${task.process}" > versions.yml
    """
}
