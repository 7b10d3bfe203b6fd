#!/usr/bin/env nextflow
/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    virnucpro-nf: VirNucPro viral sequence identification (DNABERT-S + ESM-2 + MLP)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    Usage: nextflow run . -profile docker --input reads.fa --outdir results
           (see docs/usage.md)
*/

nextflow.enable.dsl = 2

include { VIRNUCPRO               } from './workflows/virnucpro'
include { PIPELINE_INITIALISATION } from './subworkflows/local/utils_virnucpro_pipeline'
include { PIPELINE_COMPLETION     } from './subworkflows/local/utils_virnucpro_pipeline'

workflow {

    main:
    //
    // Validate parameters (nf-schema) and turn --input (FASTA or samplesheet) into samples
    //
    PIPELINE_INITIALISATION(
        params.validate_params,
        params.input
    )

    //
    // Run the pipeline
    //
    VIRNUCPRO(PIPELINE_INITIALISATION.out.samples)

    //
    // Completion message
    //
    PIPELINE_COMPLETION(params.outdir)
}
