/*
 * SC_PREPARE: each sample's fragments/BAM/counts -> cells x peaks AnnData (in parallel), merged,
 * then LSI + k nearest neighbours -> the pooling matrix used by per-cell inference.
 */
include { SC_INGEST    } from '../../../modules/local/sc_ingest/main'
include { SC_MERGE     } from '../../../modules/local/sc_merge/main'
include { SC_NEIGHBORS } from '../../../modules/local/sc_neighbors/main'

workflow SC_PREPARE {
    take:
    ch_samples      // [ meta, [files] ]
    peaks
    fai

    main:
    ch_versions = channel.empty()

    SC_INGEST(ch_samples, peaks, fai)
    ch_versions = ch_versions.mix(SC_INGEST.out.versions)

    SC_MERGE(SC_INGEST.out.cells.map { _meta, h5ad -> h5ad }.collect(sort: { a, b -> a.name <=> b.name }))
    ch_versions = ch_versions.mix(SC_MERGE.out.versions)

    SC_NEIGHBORS(SC_MERGE.out.cells)
    ch_versions = ch_versions.mix(SC_NEIGHBORS.out.versions)

    emit:
    samples   = SC_INGEST.out.cells       // [ meta, <sample>.cells.h5ad ]
    fragments = SC_INGEST.out.fragments   // [ meta, <sample>.fragments.tsv.gz, .tbi ]
    cells     = SC_NEIGHBORS.out.cells    // cells_nn.h5ad (all samples, with pooling matrix)
    versions  = ch_versions
}
