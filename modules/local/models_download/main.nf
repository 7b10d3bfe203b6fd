process MODELS_DOWNLOAD {
    tag "models"
    label 'process_single'
    label 'process_long'

    conda "${moduleDir}/environment.yml"

    // storeDir comes from conf/modules.config (--models_store), so the download happens once per site.

    input:
    val chunk_length

    output:
    path "models/dnabert-s"                               , emit: dnabert
    path "models/esm2_t36_3B_UR50D.pt"                    , emit: esm, optional: true
    path "models/esm2_t36_3B_UR50D-contact-regression.pt" , emit: esm_aux, optional: true
    path "models/${chunk_length}_model.pth"               , emit: classifier
    // digests recorded once at download (sha256sum -c format): later tasks check against them
    path "models/checksums.sha256"                        , emit: checksums
    tuple val("${task.process}"), val('virnucpro'), eval('virnucpro --version | sed "s/^virnucpro //"'), topic: versions, emit: versions_virnucpro

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    export HF_HOME=\$PWD/.cache/huggingface
    export TORCH_HOME=\$PWD/.cache/torch

    virnucpro models download \\
        --dir models \\
        --chunk-length ${chunk_length} \\
        --quiet \\
        ${args}
    """

    stub:
    """
    mkdir -p models/dnabert-s
    touch models/dnabert-s/config.json
    touch models/esm2_t36_3B_UR50D.pt
    touch models/${chunk_length}_model.pth
    touch models/checksums.sha256
    """
}
