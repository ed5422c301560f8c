process SIMULATE {
    tag "${preset} seed=${seed}"
    label 'process_low'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

    input:
    val preset
    val seed
    val validated           // true once VALIDATE_PARAMS passed: orders this task after it; a value, not the
                            // params file, so changing an unrelated parameter keeps its -resume cache

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

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    scfan simulate --preset ${preset} --seed ${seed} --outdir simulate --threads ${task.cpus} ${args}
    scfan versions --process "${task.process}" > versions.yml
    """

    stub:
    // Empty files, but samplesheets with rows (paths relative to them, as the simulator writes them) and a
    // driver table: what the per-line and per-sample fan-out downstream reads.
    """
    mkdir -p simulate/bulk/lineA simulate/bulk/lineB simulate/sc/sample1 simulate/sc/sample2 simulate/truth
    cd simulate
    touch genome.fa genome.fa.fai chrom.sizes mappability.bw blacklist.bed manifest.json sc/peaks.bed
    touch bulk/lineA/atac.bw bulk/lineA/CTCF.narrowPeak.gz bulk/lineA/SPI1.narrowPeak.gz
    touch bulk/lineB/atac.bw bulk/lineB/CTCF.narrowPeak.gz bulk/lineB/GATA1.narrowPeak.gz
    touch sc/sample1/fragments.tsv.gz sc/sample1/fragments.tsv.gz.tbi
    touch sc/sample2/fragments.tsv.gz sc/sample2/fragments.tsv.gz.tbi
    printf '%s\n' \
        'line,tf,peaks,atac,motif' \
        'lineA,CTCF,bulk/lineA/CTCF.narrowPeak.gz,bulk/lineA/atac.bw,MA0139.2' \
        'lineA,SPI1,bulk/lineA/SPI1.narrowPeak.gz,bulk/lineA/atac.bw,MA0080.7' \
        'lineB,CTCF,bulk/lineB/CTCF.narrowPeak.gz,bulk/lineB/atac.bw,MA0139.2' \
        'lineB,GATA1,bulk/lineB/GATA1.narrowPeak.gz,bulk/lineB/atac.bw,MA2388.1' > bulk_samplesheet.csv
    printf '%s\n' 'sample,fragments' 'sample1,sc/sample1/fragments.tsv.gz' 'sample2,sc/sample2/fragments.tsv.gz' \
        > sc_samplesheet.csv
    printf 'tf\tjaspar_id\nCTCF\tMA0139.2\nSPI1\tMA0080.7\nGATA1\tMA2388.1\n' > tfs.tsv
    printf 'sample\tbarcode\tcell_id\tcell_type\tquality\n' > truth/cells.tsv
    printf 'cell_type\ttf\ntype1\tSPI1\ntype2\tGATA1\n' > truth/drivers.tsv
    cd ..
    scfan versions --process "${task.process}" > versions.yml
    """
}
