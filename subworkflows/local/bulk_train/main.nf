/*
 * BULK_TRAIN: for every bulk cell line, in parallel: windows + labels -> scFANet -> test-chromosome metrics
 *   and, unless --interpret false, what the model learned (attributions, motifs, JASPAR matches).
 */
include { BULK_PREPARE     } from '../../../modules/local/bulk_prepare/main'
include { BULK_TRAIN_MODEL } from '../../../modules/local/bulk_train/main'
include { BULK_EVALUATE    } from '../../../modules/local/bulk_evaluate/main'
include { BULK_INTERPRET   } from '../../../modules/local/bulk_interpret/main'

workflow BULK_TRAIN {
    take:
    ch_lines        // [ meta, [tf], [motif], [peaks], atac ]
    fasta
    fai
    mappability
    blacklist       // path or []
    interpret       // boolean: run BULK_INTERPRET

    main:
    ch_versions = channel.empty()

    BULK_PREPARE(ch_lines, fasta, fai, mappability, blacklist)
    ch_versions = ch_versions.mix(BULK_PREPARE.out.versions)

    ch_atac = ch_lines.map { meta, _tfs, _motifs, _peaks, atac -> [meta, atac] }
    ch_train_in = BULK_PREPARE.out.windows.join(ch_atac)
    BULK_TRAIN_MODEL(ch_train_in, fasta, fai, mappability)
    ch_versions = ch_versions.mix(BULK_TRAIN_MODEL.out.versions)

    ch_eval_in = BULK_TRAIN_MODEL.out.model.join(ch_train_in)
    BULK_EVALUATE(ch_eval_in, fasta, fai, mappability)
    ch_versions = ch_versions.mix(BULK_EVALUATE.out.versions)

    ch_interpret = channel.empty()
    if (interpret) {
        BULK_INTERPRET(ch_eval_in, fasta, fai, mappability)
        ch_versions  = ch_versions.mix(BULK_INTERPRET.out.versions)
        ch_interpret = BULK_INTERPRET.out.results
    }

    emit:
    windows   = BULK_PREPARE.out.windows     // [ meta, windows.parquet ]
    models    = BULK_TRAIN_MODEL.out.model   // [ meta, model.pt ]
    metrics   = BULK_EVALUATE.out.metrics    // [ meta, metrics.tsv ]
    plots     = BULK_EVALUATE.out.plots      // [ meta, [roc.png, pr.png] ]
    interpret = ch_interpret                 // [ meta, interpret/ ] (empty with --interpret false)
    versions  = ch_versions
}
