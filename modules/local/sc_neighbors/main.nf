process SC_NEIGHBORS {
    tag "k=${params.knn}"
    label 'process_medium'

    input:
    path cells

    output:
    path "cells_nn.h5ad", emit: cells
    path "versions.yml" , emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    scfan sc neighbors --cells ${cells} ${args} --out cells_nn.h5ad
    scfan versions --process "${task.process}" > versions.yml
    """
}
