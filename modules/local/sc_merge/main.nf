process SC_MERGE {
    tag "${cells instanceof List ? cells.size() : 1} sample(s)"
    label 'process_medium'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

    input:
    path cells, stageAs: 'samples/*'

    output:
    path "cells.h5ad"  , emit: cells
    path "versions.yml", emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    scfan sc merge --threads ${task.cpus} ${args} --out cells.h5ad ${cells}
    scfan versions --process "${task.process}" > versions.yml
    """

    stub:
    """
    touch cells.h5ad
    scfan versions --process "${task.process}" > versions.yml
    """
}
