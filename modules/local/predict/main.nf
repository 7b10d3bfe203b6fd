process PREDICT {
    tag "${meta.id}:${meta.shard}/${meta.n_shards}"
    label 'process_low'

    conda "${moduleDir}/environment.yml"

    input:
    tuple val(meta), path(features)
    path classifier
    // checked against a published classifier's chunk length (a mismatch is refused)
    val chunk_length

    output:
    tuple val(meta), path("*.frames.tsv"), emit: frames
    tuple val("${task.process}"), val('virnucpro'), eval('virnucpro --version | sed "s/^virnucpro //"'), topic: versions, emit: versions_virnucpro

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
        --chunk-length ${chunk_length} \\
        --output ${prefix}.frames.tsv \\
        --quiet \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}_${String.format('%04d', meta.shard as int)}"
    """
    printf 'Sequence_ID\\tPrediction\\tscore1\\tscore2\\n' > ${prefix}.frames.tsv
    """
}
