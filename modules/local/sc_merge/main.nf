process SC_MERGE {
    tag "${cells instanceof List ? cells.size() : 1} sample(s)"
    label 'process_medium'

    input:
    path cells, stageAs: 'samples/*'

    output:
    path "cells.h5ad"  , emit: cells
    path "versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    scfan sc merge ${args} --out cells.h5ad ${cells}
    scfan versions --process "${task.process}" > versions.yml
    """
}
