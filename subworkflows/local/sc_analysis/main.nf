/*
 * SC_ANALYSIS: which cell populations are there, and which TFs drive each.
 *   chromatin  : Leiden on the cells' spectral embedding; TF activity tested between its clusters (the answer)
 *   activity   : Leiden on the TF activity matrix itself (scFAN's claim: activity alone separates cell types)
 *   chromvar   : the field's motif baseline (chromVAR deviations for the same TFs), clustered the same way
 *   tracks     : per-cluster mean predicted binding (bigWig) along the scored windows of the chromatin clusters
 *   interpret  : why each chromatin cluster's top differential TFs are called (attributions on its pooled input:
 *                the share resting on accessibility vs sequence, motif instances)
 */
include { SC_CLUSTER as SC_CLUSTER_CHROMATIN } from '../../../modules/local/sc_cluster/main'
include { SC_CLUSTER as SC_CLUSTER_ACTIVITY  } from '../../../modules/local/sc_cluster/main'
include { SC_CLUSTER as SC_CLUSTER_CHROMVAR  } from '../../../modules/local/sc_cluster/main'
include { CHROMVAR_BASELINE                  } from '../../../modules/local/chromvar_baseline/main'
include { SC_TRACKS                          } from '../../../modules/local/sc_tracks/main'
include { SC_INTERPRET                       } from '../../../modules/local/sc_interpret/main'

workflow SC_ANALYSIS {
    take:
    cells           // cells_nn.h5ad (value channel)
    activity        // tf_activity.h5ad (value channel)
    labels          // labels TSV/CSV or [] (value channel)
    models          // [ [names], [model.pt] ] (value channel, as SC_INFER sorts them)
    fragments       // [ [samples], [fragments, tbi, ...] ]
    fasta
    fai
    mappability
    motif_table     // TSV tf, jaspar_id or [] (value channel)
    run_chromvar    // boolean
    run_tracks      // boolean
    run_interpret   // boolean: run SC_INTERPRET

    main:
    ch_versions = channel.empty()

    SC_CLUSTER_CHROMATIN(cells.combine(activity).map { c, a -> [[id: 'chromatin'], c, a] }, labels)
    SC_CLUSTER_ACTIVITY(activity.map { a -> [[id: 'activity'], a, []] }, labels)
    ch_versions = ch_versions.mix(SC_CLUSTER_CHROMATIN.out.versions, SC_CLUSTER_ACTIVITY.out.versions)
    ch_analyses = SC_CLUSTER_CHROMATIN.out.analysis.mix(SC_CLUSTER_ACTIVITY.out.analysis)

    if (run_chromvar) {
        CHROMVAR_BASELINE(cells.map { c -> [[id: 'chromvar'], c] }, fasta, fai, activity, motif_table)
        SC_CLUSTER_CHROMVAR(CHROMVAR_BASELINE.out.chromvar.map { meta, h5 -> [meta, h5, []] }, labels)
        ch_versions = ch_versions.mix(CHROMVAR_BASELINE.out.versions, SC_CLUSTER_CHROMVAR.out.versions)
        ch_analyses = ch_analyses.mix(SC_CLUSTER_CHROMVAR.out.analysis)
    }

    ch_tracks = channel.empty()
    if (run_tracks) {
        SC_TRACKS(SC_CLUSTER_CHROMATIN.out.clusters, cells, models, fragments, fasta, fai, mappability)
        ch_versions = ch_versions.mix(SC_TRACKS.out.versions)
        ch_tracks = SC_TRACKS.out.tracks
    }

    ch_interpret = channel.empty()
    if (run_interpret) {
        SC_INTERPRET(SC_CLUSTER_CHROMATIN.out.clusters.join(SC_CLUSTER_CHROMATIN.out.differential), cells, models,
                     fragments, fasta, fai, mappability)
        ch_versions  = ch_versions.mix(SC_INTERPRET.out.versions)
        ch_interpret = SC_INTERPRET.out.results
    }

    // answer first, then the others in a fixed order
    def order = ['chromatin': 0, 'activity': 1, 'chromvar': 2]
    ch_sorted = ch_analyses
        .toSortedList { a, b -> order[a[0].id] <=> order[b[0].id] }
        .map { list -> [list.collect { it[0].id }, list.collect { it[1] }] }

    emit:
    analyses  = ch_sorted      // [ [names], [folders] ]
    tracks    = ch_tracks      // [ meta, tracks/ ]
    interpret = ch_interpret   // [ meta, interpret/ ] (empty with --interpret false)
    versions  = ch_versions
}
