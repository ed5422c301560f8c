/*
 * SC_INFER: per-cell TF binding. The cells are split into params.infer_shards shards (blocks of the neighbourhood
 * order that `sc neighbors` stores), each predicted as its own task (label process_gpu) from the trained models, the
 * pooled fragments and the genome, then gathered into the cells x <model>:<TF> activity matrix. Any shard count gives
 * the same matrix. With more than one shard and split_fragments, SC_SPLIT_FRAGMENTS (one task per sample) first
 * writes each shard the fragments of the cells it pools, in one pass, so that no shard reads the whole files.
 */
include { SC_SPLIT_FRAGMENTS } from '../../../modules/local/sc_split_fragments/main'
include { SC_PREDICT         } from '../../../modules/local/sc_predict/main'
include { SC_MERGE_ACTIVITY } from '../../../modules/local/sc_merge_activity/main'

workflow SC_INFER {
    take:
    cells           // cells_nn.h5ad (value channel)
    models          // [ meta, model.pt ] per model
    fragments       // [ meta, <sample>.fragments.tsv.gz, .tbi ] per sample
    fasta
    fai
    mappability
    n_shards        // integer
    split_fragments // boolean: split the fragments per shard first (only with more than one shard)

    main:
    ch_versions = channel.empty()

    ch_models = models
        .toSortedList { a, b -> a[0].id <=> b[0].id }
        .map { list -> [list.collect { it[0].id }, list.collect { it[1] }] }
    ch_fragments = fragments
        .toSortedList { a, b -> a[0].id <=> b[0].id }
        .map { list -> [list.collect { it[0].id }, list.collect { [it[1], it[2]] }.flatten()] }
    if (split_fragments && n_shards > 1) {
        // one task per sample: each reads its fragments once and writes every shard's part
        SC_SPLIT_FRAGMENTS(fragments.map { meta, frag, tbi -> [meta.id, frag, tbi] }.combine(cells), n_shards)
        ch_versions = ch_versions.mix(SC_SPLIT_FRAGMENTS.out.versions)   // every task's, as SC_PREDICT's below
        // [ "i/n", cells, [samples], [the shard's fragment files] ]: every sample's files grouped by shard folder,
        // the shard read from the shard.txt that `scfan sc split-fragments` writes in each (not from the folder name)
        ch_shards = SC_SPLIT_FRAGMENTS.out.fragments
            .flatten()
            .map { f -> [f.parent.name, f] }
            .groupTuple()
            .map { _dir, files ->
                def spec = files.find { f -> f.name == 'shard.txt' }.text.trim()
                [spec, files.findAll { f -> f.name != 'shard.txt' }.sort { f -> f.name }]
            }
            .combine(ch_fragments.map { samples, _files -> [samples] })
            .combine(cells)
            .map { shard, files, samples, cells_file -> [shard, cells_file, samples, files] }
    } else {
        ch_shards = channel.of(1..n_shards).map { i -> "${i}/${n_shards}" }
            .combine(cells)
            .combine(ch_fragments)
    }

    SC_PREDICT(ch_shards, ch_models, fasta, fai, mappability)
    ch_versions = ch_versions.mix(SC_PREDICT.out.versions)   // every shard's: .first() would pick by finishing order

    SC_MERGE_ACTIVITY(SC_PREDICT.out.activity.collect(sort: { a, b -> a.name <=> b.name }))
    ch_versions = ch_versions.mix(SC_MERGE_ACTIVITY.out.versions)

    emit:
    activity  = SC_MERGE_ACTIVITY.out.activity   // tf_activity.h5ad
    models    = ch_models                        // [ [names], [model.pt] ] sorted by name
    fragments = ch_fragments                     // [ [samples], [fragments, tbi, ...] ] sorted by sample
    versions = ch_versions
}
