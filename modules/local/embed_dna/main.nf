process EMBED_DNA {
    tag "${meta.id}:${meta.shard}/${meta.n_shards}"
    label 'process_gpu'

    conda "${moduleDir}/environment.yml"

    input:
    tuple val(meta), path(fasta)
    path model
    val tokens_per_batch

    output:
    tuple val(meta), path("*.dna.h5"), emit: h5
    tuple val("${task.process}"), val('virnucpro'), eval('virnucpro --version | sed "s/^virnucpro //"'), topic: versions, emit: versions_virnucpro

    when:
    task.ext.when == null || task.ext.when

    script:
    // ext.args (conf/modules.config): --device (cuda only when the task holds an accelerator), --precision,
    // --store-dtype and --tokens-per-batch, halved on every retry so a GPU out-of-memory error can recover.
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
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}_${String.format('%04d', meta.shard as int)}"
    """
    touch ${prefix}.dna.h5
    """
}
