process MERGE {
    tag "${meta.id}:${meta.shard}/${meta.n_shards}"
    label 'process_low'

    conda "${moduleDir}/../../../containers/environment.yml"
    container "${params.container}"

    input:
    tuple val(meta), path(dna), path(protein)

    output:
    tuple val(meta), path("*.features.h5"), emit: h5
    path "versions.yml"                   , emit: versions

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

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        virnucpro: \$(virnucpro --version | sed 's/^virnucpro //')
    END_VERSIONS
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}_${String.format('%04d', meta.shard as int)}"
    """
    touch ${prefix}.features.h5

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        virnucpro: \$(virnucpro --version 2>/dev/null | sed 's/^virnucpro //')
    END_VERSIONS
    """
}
