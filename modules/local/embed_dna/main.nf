process EMBED_DNA {
    tag "${meta.id}:${meta.shard}/${meta.n_shards}"
    label 'process_gpu'

    conda "${moduleDir}/../../../containers/environment.yml"
    container "${params.container}"

    input:
    tuple val(meta), path(fasta)
    path model
    val tokens_per_batch

    output:
    tuple val(meta), path("*.dna.h5"), emit: h5
    path "versions.yml"            , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    // ext.args (conf/modules.config) carries --device/--precision/--store-dtype and the
    // --tokens-per-batch value, halved on every retry (task.attempt) so a GPU OOM can recover.
    def args   = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}_${String.format('%04d', meta.shard as int)}"
    """
    export HF_HOME=\$PWD/.cache/huggingface
    export TORCH_HOME=\$PWD/.cache/torch
    export TRITON_CACHE_DIR=\$PWD/.cache/triton
    export OMP_NUM_THREADS=${task.cpus}
    export HF_HUB_OFFLINE=1

    virnucpro embed-dna \\
        --model ${model} \\
        --input ${fasta} \\
        --output ${prefix}.dna.h5 \\
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
    touch ${prefix}.dna.h5

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        virnucpro: \$(virnucpro --version 2>/dev/null | sed 's/^virnucpro //')
    END_VERSIONS
    """
}
