process REPORT {
    label 'process_low'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

    input:
    tuple val(names), path(analyses, stageAs: 'analysis/*')   // one `sc cluster` folder per name, first = answer
    path metrics, stageAs: 'metrics/metrics*.tsv'             // [] when models were given
    tuple val(figure_names), path(figures, stageAs: 'figures/figure*.png')
    tuple val(interpret_names), path(interprets, stageAs: 'interpret*/*')   // one `bulk interpret` folder per line, or none
    path sc_interpret, stageAs: 'sc_interpret/*'                    // `sc interpret` folder, or [] when not run
    path cells
    path activity
    path versions, stageAs: 'versions/versions*.yml'      // every task's versions.yml (no collectFile: -resume)
    path params_json
    path drivers                                             // [] unless the simulator's truth is known

    output:
    path "report.html" , emit: report
    path "versions.yml", emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def dirs = analyses instanceof List ? analyses : [analyses]
    def analysis_args = [names, dirs].transpose().collect { n, d -> "--analysis '${n}=${d}'" }.join(' ')
    def metric_files = metrics instanceof List ? metrics : (metrics ? [metrics] : [])
    def metric_args = metric_files.collect { f -> "--metrics ${f}" }.join(' ')
    def figs = figures instanceof List ? figures : (figures ? [figures] : [])
    def figure_args = [figure_names, figs].transpose().collect { n, f -> "--figure '${n}=${f}'" }.join(' ')
    def interpret_dirs = interprets instanceof List ? interprets : (interprets ? [interprets] : [])
    def interpret_args = [interpret_names, interpret_dirs].transpose().collect { n, d -> "--interpret '${n}=${d}'" }.join(' ')
    def sc_interpret_arg = sc_interpret ? "--sc-interpret ${sc_interpret}" : ''
    def drv = drivers ? "--drivers ${drivers}" : ''
    def version_files = versions instanceof List ? versions : [versions]
    def version_args = version_files.collect { f -> "--versions ${f}" }.join(' ')
    """
    scfan report \\
        ${analysis_args} \\
        ${metric_args} \\
        ${figure_args} \\
        ${interpret_args} \\
        ${sc_interpret_arg} \\
        --cells ${cells} \\
        --activity ${activity} \\
        ${version_args} \\
        --params ${params_json} \\
        ${drv} \\
        ${args} \\
        --out report.html
    scfan versions --process "${task.process}" > versions.yml
    """

    stub:
    """
    touch report.html
    scfan versions --process "${task.process}" > versions.yml
    """
}
