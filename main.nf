#!/usr/bin/env nextflow
/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    virnucpro/virnucpro
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    Github : https://github.com/virnucpro/virnucpro
----------------------------------------------------------------------------------------
*/

/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    PARAMETERS (typed)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    Under the strict syntax (the default from Nextflow 26.04; NXF_SYNTAX_PARSER=v2 on 25.10) a value given on the
    command line stays a string unless its param is typed here: `--save_embeddings false` would be the truthy string
    "false". Every param of nextflow_schema.json is declared with the schema's type and default
    (tests/pipeline/test_config_params.py keeps the three in step); nextflow.config keeps the defaults that the
    config files themselves read.
----------------------------------------------------------------------------------------
*/

params {
    // Input/output options
    input: String = null
    outdir: String = null
    chunk_length: Integer = 500
    email: String = null
    multiqc_title: String = null
    save_shards: Boolean = false
    save_embeddings: Boolean = false
    save_frames: Boolean = false

    // Sharding options
    shards: Integer = null
    shard_tokens: Integer = 50000000

    // Model options
    models_dir: String = null
    dnabert: String = null
    esm: String = null
    classifier: String = null
    models_store: String = null

    // Embedding options
    precision: String = 'auto'
    store_dtype: String = 'float32'
    profile_batch: Boolean = false
    dna_tokens_per_batch: Integer = null
    protein_tokens_per_batch: Integer = null
    predict_batch_size: Integer = 256

    // Resource options
    limit_cpus: Integer = 16
    limit_memory: String = '128.GB'
    limit_time: String = '240.h'
    gpu_partition: String = null
    container_cpu: String = 'ghcr.io/virnucpro/virnucpro:0.1.0-cpu'
    container_gpu: String = 'ghcr.io/virnucpro/virnucpro:0.1.0'

    // Institutional config options
    custom_config_version: String = 'master'
    custom_config_base: String = 'https://raw.githubusercontent.com/nf-core/configs/master'
    config_profile_name: String = null
    config_profile_description: String = null
    config_profile_contact: String = null
    config_profile_url: String = null

    // Generic options
    version: Boolean = false
    publish_dir_mode: String = 'copy'
    email_on_fail: String = null
    plaintext_email: Boolean = false
    max_multiqc_email_size: String = '25.MB'
    monochrome_logs: Boolean = false
    multiqc_config: String = null
    multiqc_logo: String = null
    multiqc_methods_description: String = null
    validate_params: Boolean = true
    pipelines_testdata_base_path: String = 'https://raw.githubusercontent.com/nf-core/test-datasets/'
    trace_report_suffix: String = null
    help: String = null
    help_full: Boolean = false
    show_hidden: Boolean = false
}

/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    IMPORT FUNCTIONS / MODULES / SUBWORKFLOWS / WORKFLOWS
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
*/

include { VIRNUCPRO  } from './workflows/virnucpro'
include { PIPELINE_INITIALISATION } from './subworkflows/local/utils_nfcore_virnucpro_pipeline'
include { PIPELINE_COMPLETION     } from './subworkflows/local/utils_nfcore_virnucpro_pipeline'
/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    NAMED WORKFLOWS FOR PIPELINE
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
*/

//
// WORKFLOW: Run main analysis pipeline depending on type of input
//
workflow VIRNUCPRO_VIRNUCPRO {

    take:
    samplesheet // channel: [ val(meta), [ path(fasta), ... ] ] from --input (FASTA or samplesheet)

    main:

    //
    // WORKFLOW: Run pipeline
    //
    VIRNUCPRO (
        samplesheet,
        params.chunk_length,
        params.multiqc_config,
        params.multiqc_logo,
        params.multiqc_methods_description,
        params.outdir,
    )
    emit:
    multiqc_report = VIRNUCPRO.out.multiqc_report // channel: /path/to/multiqc_report.html
}
/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    RUN MAIN WORKFLOW
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
*/

workflow {

    main:
    //
    // SUBWORKFLOW: Run initialisation tasks
    //
    PIPELINE_INITIALISATION (
        params.version,
        params.validate_params,
        params.monochrome_logs,
        args,
        params.outdir,
        params.input,
        params.help,
        params.help_full,
        params.show_hidden
    )

    //
    // WORKFLOW: Run main workflow
    //
    VIRNUCPRO_VIRNUCPRO (
        PIPELINE_INITIALISATION.out.samplesheet
    )
    //
    // SUBWORKFLOW: Run completion tasks
    //
    PIPELINE_COMPLETION (
        params.email,
        params.email_on_fail,
        params.plaintext_email,
        params.outdir,
        params.monochrome_logs,
        VIRNUCPRO_VIRNUCPRO.out.multiqc_report
    )
}

/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    THE END
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
*/
