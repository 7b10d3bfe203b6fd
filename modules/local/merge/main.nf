process MERGE {
    tag "${meta.id}:${meta.shard}/${meta.n_shards}"
    label 'process_low'

    conda "${moduleDir}/environment.yml"

    input:
    // both embeddings of one shard; staged under their own names (<sample>_<shard>.dna.h5 / .protein.h5)
    tuple val(meta), path(dna), path(protein)

    output:
    tuple val(meta), path("*.features.h5"), emit: h5
    tuple val("${task.process}"), val('virnucpro'), eval('virnucpro --version | sed "s/^virnucpro //"'), topic: versions, emit: versions_virnucpro

    when:
    task.ext.when == null || task.ext.when

    script:
    def args   = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}_${String.format('%04d', meta.shard as int)}"
    """
    virnucpro merge \\
        --dna ${dna} \\
        --protein ${protein} \\
        --output ${prefix}.features.h5 \\
        --quiet \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}_${String.format('%04d', meta.shard as int)}"
    """
    touch ${prefix}.features.h5
    """
}
