/*
 * SCFAN: one run of the pipeline.
 *   inputs (or SIMULATE) -> CHECK_INPUTS -> BULK_TRAIN (per line: model, metrics, what it learned)  \
 *                                        -> SC_PREPARE (per sample) /-> SC_INFER (cell shards) -> activity
 *   -> SC_ANALYSIS (clusters, differential TFs, chromVAR baseline, per-cluster tracks, why each cluster's TFs are
 *      called) -> REPORT (report.html)
 */
include { SIMULATE     } from '../modules/local/simulate/main'
include { CHECK_INPUTS } from '../modules/local/check_inputs/main'
include { BULK_TRAIN   } from '../subworkflows/local/bulk_train/main'
include { SC_PREPARE   } from '../subworkflows/local/sc_prepare/main'
include { SC_INFER     } from '../subworkflows/local/sc_infer/main'
include { SC_ANALYSIS  } from '../subworkflows/local/sc_analysis/main'
include { REPORT       } from '../modules/local/report/main'
include { bulkLines ; scSamples } from '../subworkflows/local/utils_scfan/main'

workflow SCFAN {
    take:
    params_json     // validated params (orders every task after validation)

    main:
    ch_versions = channel.empty()
    // the gate for the first tasks: `true` once validation passed. Not the params file itself: its content changes
    // with every parameter, which would invalidate every task's -resume cache (tests/pipeline/test_pipeline.py)
    ch_validated = params_json.map { _json -> true }.first()

    def simulate = !params.genome && params.simulate_preset
    if (simulate) {
        SIMULATE(params.simulate_preset, params.seed, ch_validated)
        ch_versions      = ch_versions.mix(SIMULATE.out.versions)
        // value channels already: every per-line / per-sample task reads the same genome and tracks (SIMULATE's
        // inputs are all values, so it emits values; `.first()` on a value channel only prints a warning)
        ch_fasta         = SIMULATE.out.fasta
        ch_fai           = SIMULATE.out.fai
        ch_mappability   = SIMULATE.out.mappability
        ch_blacklist     = SIMULATE.out.blacklist
        ch_bulk_sheet    = SIMULATE.out.bulk_samplesheet
        ch_sc_sheet      = SIMULATE.out.sc_samplesheet
        ch_sc_peaks      = SIMULATE.out.sc_peaks
        ch_truth_cells   = SIMULATE.out.truth_cells.ifEmpty([])
        ch_drivers       = SIMULATE.out.truth_drivers.ifEmpty([])
        ch_motif_table   = SIMULATE.out.tfs   // the matrices the simulator planted
    } else {
        // Resolved only once VALIDATE_PARAMS has passed, so a missing or wrong path is reported by it, not here.
        def input = { name -> params_json.map { _json -> file(params[name], checkIfExists: true) }.first() }
        ch_fasta         = input('genome')
        ch_fai           = params_json.map { _json -> def f = file("${params.genome}.fai"); f.exists() ? f : [] }.first()
        ch_mappability   = input('mappability')
        ch_blacklist     = params.blacklist ? input('blacklist') : channel.value([])
        ch_bulk_sheet    = input('bulk_samplesheet')
        ch_sc_sheet      = input('sc_samplesheet')
        ch_sc_peaks      = input('sc_peaks')
        ch_truth_cells   = channel.value([])
        ch_drivers       = channel.value([])
        ch_motif_table   = channel.value([])
    }
    // cell labels (ARI/NMI in the report): the user's file, else the simulator's truth when there is one
    ch_labels = params.cell_labels
        ? params_json.map { _json -> file(params.cell_labels, checkIfExists: true) }.first()
        : ch_truth_cells

    CHECK_INPUTS(ch_fasta, ch_fai, ch_mappability, ch_blacklist, ch_bulk_sheet, ch_sc_sheet, ch_validated)
    ch_versions = ch_versions.mix(CHECK_INPUTS.out.versions)
    ch_fai      = CHECK_INPUTS.out.fai   // a value channel (all of CHECK_INPUTS' inputs are values)

    if (params.models) {
        // pre-trained models: NAME=path or path (named after the file, or its folder for .../<name>/model.pt)
        ch_models = params_json.flatMap { _json ->
            params.models.tokenize(',')*.trim().collect { item ->
                def parts = item.contains('=') ? item.split('=', 2) : [null, item]
                def f = file(parts[1], checkIfExists: true)
                def name = parts[0] ?: (f.baseName == 'model' ? f.parent.name : f.baseName.replaceAll(/\.model$/, ''))
                [[id: name], f]
            }
        }
        ch_metrics   = channel.empty()
        ch_plots     = channel.empty()
        ch_interpret = channel.empty()
    } else {
        BULK_TRAIN(bulkLines(CHECK_INPUTS.out.bulk_samplesheet), ch_fasta, ch_fai, ch_mappability, ch_blacklist,
                   params.interpret as boolean)
        ch_versions  = ch_versions.mix(BULK_TRAIN.out.versions)
        ch_models    = BULK_TRAIN.out.models
        ch_metrics   = BULK_TRAIN.out.metrics
        ch_plots     = BULK_TRAIN.out.plots
        ch_interpret = BULK_TRAIN.out.interpret
    }

    SC_PREPARE(scSamples(CHECK_INPUTS.out.sc_samplesheet), ch_sc_peaks, ch_fai)
    ch_versions = ch_versions.mix(SC_PREPARE.out.versions)

    SC_INFER(SC_PREPARE.out.cells, ch_models, SC_PREPARE.out.fragments, ch_fasta, ch_fai, ch_mappability,
             params.infer_shards as int, params.split_fragments as boolean)
    ch_versions = ch_versions.mix(SC_INFER.out.versions)

    SC_ANALYSIS(SC_PREPARE.out.cells, SC_INFER.out.activity, ch_labels, SC_INFER.out.models, SC_INFER.out.fragments,
                ch_fasta, ch_fai, ch_mappability, ch_motif_table, params.chromvar as boolean,
                params.tracks as boolean, params.interpret as boolean)
    ch_versions = ch_versions.mix(SC_ANALYSIS.out.versions)

    // REPORT: every input sorted, so a resumed run sees the same task
    ch_report_metrics = ch_metrics.toSortedList { a, b -> a[0].id <=> b[0].id }.map { list -> list.collect { it[1] } }
    ch_report_figures = ch_plots
        .flatMap { meta, files -> (files instanceof List ? files : [files]).collect { f -> ["${meta.id} ${f.baseName.toUpperCase()}", f] } }
        .toSortedList { a, b -> a[0] <=> b[0] }
        .map { list -> [list.collect { it[0] }, list.collect { it[1] }] }
    // [ [line], [interpret/] ]: none with --interpret false, the report then says the step was not run
    ch_report_interpret = ch_interpret
        .toSortedList { a, b -> a[0].id <=> b[0].id }
        .map { list -> [list.collect { it[0].id }, list.collect { it[1] }] }
    // [ interpret/ ] of the chromatin clusters, or [] with --interpret false (the report then says so)
    ch_report_sc_interpret = SC_ANALYSIS.out.interpret.map { _meta, dir -> dir }.collect().ifEmpty([])
    // the tasks' own versions.yml files (a collectFile result is new on every run and would defeat -resume)
    ch_report_versions = ch_versions.unique().collect(sort: true)
    REPORT(SC_ANALYSIS.out.analyses, ch_report_metrics, ch_report_figures, ch_report_interpret,
           ch_report_sc_interpret, SC_PREPARE.out.cells, SC_INFER.out.activity, ch_report_versions, params_json,
           ch_drivers)
    ch_versions = ch_versions.mix(REPORT.out.versions)

    emit:
    models    = ch_models
    metrics   = ch_metrics
    interpret = ch_interpret
    cells     = SC_PREPARE.out.cells
    activity  = SC_INFER.out.activity
    analyses  = SC_ANALYSIS.out.analyses
    report    = REPORT.out.report
    versions  = ch_versions
}
