process PREDICT {
    tag "${meta.id}:${meta.shard}/${meta.n_shards}"
    label 'process_low'

    conda "${moduleDir}/../../../containers/environment.yml"
    container "${params.container}"

    input:
    tuple val(meta), path(features)
    path classifier

    output:
    tuple val(meta), path("*.frames.tsv"), emit: frames
    path "versions.yml"                  , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args   = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}_${String.format('%04d', meta.shard as int)}"
    """
    export TORCH_HOME=\$PWD/.cache/torch
    export OMP_NUM_THREADS=${task.cpus}

    virnucpro predict \\
        --features ${features} \\
        --classifier ${classifier} \\
        --output ${prefix}.frames.tsv \\
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
    printf 'Sequence_ID\\tPrediction\\tscore1\\tscore2\\n' > ${prefix}.frames.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        virnucpro: \$(virnucpro --version 2>/dev/null | sed 's/^virnucpro //')
    END_VERSIONS
    """
}
