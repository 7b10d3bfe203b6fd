process PROFILE {
    tag "${dnabert.name}+${esm.name}"
    label 'process_gpu'

    conda "${moduleDir}/environment.yml"

    input:
    path dnabert
    tuple path(esm), path(esm_aux)

    output:
    path "profile.json", emit: json
    tuple val("${task.process}"), val('virnucpro'), eval('virnucpro --version | sed "s/^virnucpro //"'), topic: versions, emit: versions_virnucpro

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    export HF_HOME=\$PWD/.cache/huggingface
    export TORCH_HOME=\$PWD/.cache/torch
    export TRITON_CACHE_DIR=\$PWD/.cache/triton
    export OMP_NUM_THREADS=${task.cpus}
    export HF_HUB_OFFLINE=1

    virnucpro profile \\
        --dnabert ${dnabert} \\
        --esm ${esm} \\
        --output profile.json \\
        --quiet \\
        ${args}
    """

    stub:
    """
    echo '{"dna": {"tokens_per_batch": 4096}, "protein": {"tokens_per_batch": 4096}}' > profile.json
    """
}
