process SIMULATE {
    tag "${preset} seed=${seed}"
    label 'process_low'

    input:
    val preset
    val seed
    path validated_params   // only orders this task after parameter validation

    output:
    path "simulate"                       , emit: dir
    path "simulate/genome.fa"             , emit: fasta
    path "simulate/genome.fa.fai"         , emit: fai
    path "simulate/mappability.bw"        , emit: mappability
    path "simulate/blacklist.bed"         , emit: blacklist
    path "simulate/bulk_samplesheet.csv"  , emit: bulk_samplesheet
    path "simulate/sc_samplesheet.csv"    , emit: sc_samplesheet
    path "simulate/sc/peaks.bed"          , emit: sc_peaks
    path "simulate/tfs.tsv"               , emit: tfs
    path "simulate/truth/cells.tsv"       , emit: truth_cells  , optional: true
    path "simulate/truth/drivers.tsv"     , emit: truth_drivers, optional: true
    path "versions.yml"                   , emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    scfan simulate --preset ${preset} --seed ${seed} --outdir simulate ${args}
    scfan versions --process "${task.process}" > versions.yml
    """
}
