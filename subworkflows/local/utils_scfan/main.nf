/*
 * Pipeline set-up and wrap-up: help text, parameter validation (Python, against nextflow_schema.json),
 * samplesheet parsing, and the versions.yml of every process.
 */
include { VALIDATE_PARAMS } from '../../../modules/local/validate_params/main'

def helpText(schemaFile) {
    def schema = new groovy.json.JsonSlurper().parse(schemaFile)
    def lines = ["Usage: nextflow run scfan-nf -profile <test|docker|singularity|slurm|awsbatch|gpu> --outdir DIR [options]", ""]
    schema['$defs'].each { _key, group ->
        lines << "${group.title}:"
        group.properties.each { name, spec ->
            def dflt = spec.containsKey('default') ? " [default: ${spec.default}]" : ''
            lines << String.format("  --%-20s %s%s", name, spec.description ?: '', dflt)
        }
        lines << ''
    }
    return lines.join('\n')
}

workflow PIPELINE_INITIALISATION {
    main:
    if (params.help) {
        log.info(helpText(file("${projectDir}/nextflow_schema.json")))
        exit(0)
    }
    // `--container_image ''` reaches here as true (Nextflow reads a flag without a value as a boolean)
    def image = params.container_image
    if (workflow.containerEngine && !(image instanceof CharSequence && image.trim())) {
        error("--container_image is empty, but -profile ${workflow.profile} runs every task in ${workflow.containerEngine}: give the scfan image to run them in (containers/Dockerfile)")
    }
    def json = groovy.json.JsonOutput.prettyPrint(groovy.json.JsonOutput.toJson(params))
    ch_params = channel.of(json).collectFile(name: 'params_input.json', newLine: true)
    VALIDATE_PARAMS(ch_params, file("${projectDir}/nextflow_schema.json", checkIfExists: true),
                    workflow.launchDir.toString())

    emit:
    params_json = VALIDATE_PARAMS.out.params
    versions    = VALIDATE_PARAMS.out.versions
}

// [ meta, [tf], [motif], [peaks], atac ] per bulk line, from a checked samplesheet (absolute paths).
def bulkLines(ch_sheet) {
    return ch_sheet
        .splitCsv(header: true, strip: true)
        .map { row -> [row.line, row] }
        .groupTuple(sort: { a, b -> a.tf <=> b.tf })
        .map { line, rows ->
            [[id: line], rows*.tf, rows*.motif, rows.collect { r -> file(r.peaks, checkIfExists: true) },
             file(rows[0].atac, checkIfExists: true)]
        }
}

// [ meta, [files] ] per single-cell sample; meta.columns maps samplesheet column -> staged file name.
def scSamples(ch_sheet) {
    return ch_sheet
        .splitCsv(header: true, strip: true)
        .map { row ->
            def files = []
            def columns = [:]
            ['fragments', 'bam', 'counts', 'peaks', 'barcodes', 'whitelist'].each { col ->
                if (row[col]) {
                    def f = file(row[col], checkIfExists: true)
                    files << f
                    columns[col] = f.name
                    def index = col == 'fragments' ? file("${row[col]}.tbi") : col == 'bam' ? file("${row[col]}.bai") : null
                    if (index?.exists()) {
                        files << index
                    }
                }
            }
            [[id: row.sample, columns: columns, barcode_tag: row.barcode_tag ?: null], files]
        }
}

workflow PIPELINE_COMPLETION {
    take:
    ch_versions

    main:
    ch_versions
        .unique { f -> f.text }   // shards of one process write the same block
        .collectFile(name: 'versions.yml', storeDir: "${params.outdir}/pipeline_info", sort: true, newLine: false)
}
