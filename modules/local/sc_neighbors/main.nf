process SC_NEIGHBORS {
    tag "${cells.name}"
    label 'process_medium'
    container "${ task.ext.container ?: '' }"   // one image for every module: params.container_image, conf/modules.config

    input:
    path cells

    output:
    path "cells_nn.h5ad", emit: cells
    path "versions.yml" , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''   // --k, --n-components, --seed: conf/modules.config
    """
    scfan sc neighbors --cells ${cells} --threads ${task.cpus} ${args} --out cells_nn.h5ad
    scfan versions --process "${task.process}" > versions.yml
    """

    stub:
    """
    touch cells_nn.h5ad
    scfan versions --process "${task.process}" > versions.yml
    """
}
