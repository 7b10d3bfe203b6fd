process MODELS_DOWNLOAD {
    tag "models"
    label 'process_single'
    label 'process_long'

    conda "${moduleDir}/../../../containers/environment.yml"
    container "${params.container}"

    // storeDir is set in conf/modules.config when --models_store is given, so the
    // download happens once per site, not once per run.

    input:
    val chunk_length

    output:
    path "models/dnabert-s"                          , emit: dnabert
    path "models/esm2_t36_3B_UR50D.pt"               , emit: esm, optional: true
    path "models/esm2_t36_3B_UR50D-contact-regression.pt", emit: esm_aux, optional: true
    path "models/${chunk_length}_model.pth"          , emit: classifier
    path "models/checksums.sha256"                   , emit: checksums
    path "versions.yml"                              , emit: versions

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

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        virnucpro: \$(virnucpro --version | sed 's/^virnucpro //')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p models/dnabert-s
    touch models/dnabert-s/config.json
    touch models/esm2_t36_3B_UR50D.pt
    touch models/${chunk_length}_model.pth
    touch models/checksums.sha256

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        virnucpro: \$(virnucpro --version 2>/dev/null | sed 's/^virnucpro //')
    END_VERSIONS
    """
}
