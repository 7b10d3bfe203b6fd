process SUMMARIZE {
    tag "${meta.id}"
    label 'process_single'

    conda "${moduleDir}/../../../containers/environment.yml"
    container "${params.container}"

    input:
    // frames: per-shard TSVs already sorted by shard number (see workflows/virnucpro.nf),
    // so the command line, and with it the -resume hash, is the same on every run.
    tuple val(meta), path(reads, stageAs: 'prepare/reads.tsv'), path(frames, stageAs: 'frames/*')

    output:
    tuple val(meta), path("${meta.id}/prediction_results.txt")           , emit: results
    tuple val(meta), path("${meta.id}/prediction_results_highestscore.csv"), emit: highestscore
    tuple val(meta), path("${meta.id}/reads.tsv")                        , emit: reads
    path "versions.yml"                                                   , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    virnucpro summarize \\
        --reads ${reads} \\
        --frames ${frames} \\
        --outdir ${meta.id} \\
        --quiet \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        virnucpro: \$(virnucpro --version | sed 's/^virnucpro //')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p ${meta.id}
    printf 'Sequence_ID\\tPrediction\\tscore1\\tscore2\\n' > ${meta.id}/prediction_results.txt
    printf 'Modified_ID\\tIs_Virus\\n' > ${meta.id}/prediction_results_highestscore.csv
    touch ${meta.id}/reads.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        virnucpro: \$(virnucpro --version 2>/dev/null | sed 's/^virnucpro //')
    END_VERSIONS
    """
}
