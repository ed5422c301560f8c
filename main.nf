#!/usr/bin/env nextflow
/*
 * scfan-nf: predict transcription-factor binding in single cells (scFAN, Fu et al. 2020, re-created).
 * This file only wires the named workflow; the story of a run is in workflows/scfan.nf.
 */
nextflow.enable.dsl = 2

include { SCFAN                   } from './workflows/scfan'
include { PIPELINE_INITIALISATION } from './subworkflows/local/utils_scfan/main'
include { PIPELINE_COMPLETION     } from './subworkflows/local/utils_scfan/main'

workflow {
    PIPELINE_INITIALISATION()
    SCFAN(PIPELINE_INITIALISATION.out.params_json)
    PIPELINE_COMPLETION(PIPELINE_INITIALISATION.out.versions.mix(SCFAN.out.versions))
}

workflow.onComplete {
    if (workflow.success) {
        log.info("scfan-nf: done in ${workflow.duration}; results in ${params.outdir}")
    } else {
        log.error("scfan-nf: failed (${workflow.errorMessage?.readLines()?.first() ?: 'see above'}); run records in ${params.outdir}/pipeline_info/")
    }
}
