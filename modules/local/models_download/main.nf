process MODELS_DOWNLOAD {
    tag "models"
    label 'process_single'
    label 'process_long'

    conda "${moduleDir}/environment.yml"

    // No storeDir: it cannot carry this process's eval output (versions topic; Nextflow issue 5785) and is
    // deprecated upstream. With --models_store the store folder is staged as `models` and `models download` works
    // in it: files matching its checksums.sha256 are kept, only missing or changed ones are fetched, and the folder
    // is verified before the task succeeds, so a second run downloads nothing. Without a store (input []) the
    // models are downloaded into this task's work directory.

    input:
    val chunk_length
    path store, stageAs: 'models' // the --models_store folder, or [] for none

    output:
    path "models/dnabert-s"                               , emit: dnabert
    path "models/esm2_t36_3B_UR50D.pt"                    , emit: esm, optional: true
    path "models/esm2_t36_3B_UR50D-contact-regression.pt" , emit: esm_aux, optional: true
    path "models/${chunk_length}_model.pth"               , emit: classifier
    // the digests the models were verified against (sha256sum -c format); with a store, the store's list
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
