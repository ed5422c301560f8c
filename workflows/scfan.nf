/*
 * SCFAN: one run of the pipeline.
 *   inputs (or SIMULATE) -> CHECK_INPUTS -> BULK_TRAIN (per line)  \
 *                                        -> SC_PREPARE (per sample) -> [per-cell inference: next stage]
 */
include { SIMULATE     } from '../modules/local/simulate/main'
include { CHECK_INPUTS } from '../modules/local/check_inputs/main'
include { BULK_TRAIN   } from '../subworkflows/local/bulk_train/main'
include { SC_PREPARE   } from '../subworkflows/local/sc_prepare/main'
include { bulkLines ; scSamples } from '../subworkflows/local/utils_scfan/main'

workflow SCFAN {
    take:
    params_json     // validated params (orders every task after validation)

    main:
    ch_versions = channel.empty()

    def simulate = !params.genome && params.simulate_preset
    if (simulate) {
        SIMULATE(params.simulate_preset, params.seed, params_json)
        ch_versions      = ch_versions.mix(SIMULATE.out.versions)
        ch_fasta         = SIMULATE.out.fasta
        ch_fai           = SIMULATE.out.fai
        ch_mappability   = SIMULATE.out.mappability
        ch_blacklist     = SIMULATE.out.blacklist
        ch_bulk_sheet    = SIMULATE.out.bulk_samplesheet
        ch_sc_sheet      = SIMULATE.out.sc_samplesheet
        ch_sc_peaks      = SIMULATE.out.sc_peaks
    } else {
        ch_fasta         = channel.value(file(params.genome, checkIfExists: true))
        def fai          = file("${params.genome}.fai")
        ch_fai           = channel.value(fai.exists() ? fai : [])
        ch_mappability   = channel.value(file(params.mappability, checkIfExists: true))
        ch_blacklist     = channel.value(params.blacklist ? file(params.blacklist, checkIfExists: true) : [])
        ch_bulk_sheet    = channel.value(file(params.bulk_samplesheet, checkIfExists: true))
        ch_sc_sheet      = channel.value(file(params.sc_samplesheet, checkIfExists: true))
        ch_sc_peaks      = channel.value(file(params.sc_peaks, checkIfExists: true))
    }

    CHECK_INPUTS(ch_fasta, ch_fai, ch_mappability, ch_blacklist, ch_bulk_sheet, ch_sc_sheet, params_json)
    ch_versions = ch_versions.mix(CHECK_INPUTS.out.versions)
    ch_fai      = CHECK_INPUTS.out.fai

    BULK_TRAIN(bulkLines(CHECK_INPUTS.out.bulk_samplesheet), ch_fasta, ch_fai, ch_mappability, ch_blacklist)
    ch_versions = ch_versions.mix(BULK_TRAIN.out.versions)

    SC_PREPARE(scSamples(CHECK_INPUTS.out.sc_samplesheet), ch_sc_peaks, ch_fai)
    ch_versions = ch_versions.mix(SC_PREPARE.out.versions)

    emit:
    models   = BULK_TRAIN.out.models
    metrics  = BULK_TRAIN.out.metrics
    cells    = SC_PREPARE.out.cells
    versions = ch_versions
}
