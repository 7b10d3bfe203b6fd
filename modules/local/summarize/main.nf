process SUMMARIZE {
    tag "${meta.id}"
    label 'process_single'

    conda "${moduleDir}/environment.yml"

    input:
    // frames: per-shard TSVs already sorted by shard number (workflows/virnucpro.nf), so the command line,
    // and with it the -resume hash, is the same on every run; fasta: the sample's files in PREPARE's order,
    // staged apart like there (their sequences go into virus.fna); manifest: PREPARE's, so summarize places each
    // table by the shard it says it holds and refuses a shard missing or given twice
    tuple val(meta), path(reads, stageAs: 'prepare/reads.tsv'), path(manifest, stageAs: 'prepare/manifest.json'), path(frames, stageAs: 'frames/*'), path(fasta, stageAs: 'input/?/*')
    val chunk_length

    output:
    tuple val(meta), path("${meta.id}/prediction_results.txt")            , emit: results
    tuple val(meta), path("${meta.id}/prediction_results_highestscore.csv"), emit: highestscore
    tuple val(meta), path("${meta.id}/reads.tsv")                         , emit: reads
    tuple val(meta), path("${meta.id}/virus_summary.tsv")                 , emit: summary
    tuple val(meta), path("${meta.id}/virus_regions.tsv")                 , emit: regions
    tuple val(meta), path("${meta.id}/virus.fna")                         , emit: fasta
    tuple val(meta), path("${meta.id}/report.html")                       , emit: report
    tuple val(meta), path("${meta.id}/summary.json")                      , emit: json
    // one row per sample for MultiQC (custom content, assets/multiqc_config.yml), counted from virus_summary.tsv
    tuple val(meta), path("${meta.id}_virnucpro_mqc.tsv")                 , emit: mqc
    tuple val("${task.process}"), val('virnucpro'), eval('virnucpro --version | sed "s/^virnucpro //"'), topic: versions, emit: versions_virnucpro

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    virnucpro summarize \\
        --reads ${reads} \\
        --manifest ${manifest} \\
        --frames ${frames} \\
        --inputs ${fasta} \\
        --chunk-length ${chunk_length} \\
        --outdir ${meta.id} \\
        --quiet \\
        ${args}

    awk -F'\\t' -v OFS='\\t' -v sample='${meta.id}' '
        NR == 1 { for (i = 1; i <= NF; i++) col[\$i] = i; next }
        { reads++; n[\$col["call"]]++; if (\$col["call"] == "virus") tier[\$col["confidence"]]++ }
        END {
            print "Sample", "reads", "virus", "others", "NA", "virus_high", "virus_medium", "virus_low"
            print sample, reads + 0, n["virus"] + 0, n["others"] + 0, n["NA"] + 0, tier["high"] + 0, tier["medium"] + 0, tier["low"] + 0
        }' ${meta.id}/virus_summary.tsv > ${meta.id}_virnucpro_mqc.tsv
    """

    stub:
    """
    mkdir -p ${meta.id}
    printf 'Sequence_ID\\tPrediction\\tscore1\\tscore2\\n' > ${meta.id}/prediction_results.txt
    printf 'Modified_ID\\tIs_Virus\\n' > ${meta.id}/prediction_results_highestscore.csv
    printf 'read_id\\tstatus\\n' > ${meta.id}/reads.tsv
    printf 'read_id\\tlength\\twindows\\twindows_scored\\twindows_viral\\tfraction_viral\\tmean_score\\tmax_score\\tcall\\tconfidence\\tstatus\\tregions\\tcoverage\\tviral_bp\\tnotes\\n' > ${meta.id}/virus_summary.tsv
    printf 'read_id\\tstart\\tend\\twindows\\tmean_score\\tkind\\n' > ${meta.id}/virus_regions.tsv
    touch ${meta.id}/virus.fna
    echo '<!DOCTYPE html><title>${meta.id}</title>' > ${meta.id}/report.html
    echo '{}' > ${meta.id}/summary.json
    printf 'Sample\\treads\\tvirus\\tothers\\tNA\\tvirus_high\\tvirus_medium\\tvirus_low\\n${meta.id}\\t0\\t0\\t0\\t0\\t0\\t0\\t0\\n' > ${meta.id}_virnucpro_mqc.tsv
    """
}
