/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    Pipeline initialisation (nf-schema validation, input parsing) and completion
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
*/

include { validateParameters } from 'plugin/nf-schema'
include { paramsSummaryLog   } from 'plugin/nf-schema'
include { samplesheetToList  } from 'plugin/nf-schema'

// FASTA file name (plain or gzip) -> sample id
def fastaSampleId(f) {
    return f.name.replaceAll(/\.(fa|fasta|fna|fas|ffn)(\.gz)?$/, '')
}

def isSamplesheet(path_string) {
    return path_string.toString() ==~ /(?i).*\.(csv|tsv)$/
}

workflow PIPELINE_INITIALISATION {

    take:
    validate_params // boolean: validate parameters against nextflow_schema.json
    input           // string: FASTA (plain/gz) or samplesheet CSV (sample,fasta)

    main:
    //
    // Parameters: schema validation and a summary of non-default values
    //
    if (validate_params) {
        validateParameters()
    }
    log.info(paramsSummaryLog(workflow))

    if (params.shards && params.shard_tokens) {
        log.info("--shards ${params.shards} given: it overrides --shard_tokens ${params.shard_tokens}")
    }
    if (!input) {
        error("--input is required: a FASTA file or a samplesheet CSV with columns sample,fasta")
    }

    //
    // Samples: [ meta, [ fasta, ... ] ] (several samplesheet rows of one sample are pooled)
    //
    if (isSamplesheet(input)) {
        ch_samples = Channel
            .fromList(samplesheetToList(input, "${projectDir}/assets/schema_input.json"))
            .map { meta, fasta -> [meta.id, meta, fasta] }
            .groupTuple()
            .map { _id, metas, fastas -> [metas[0], fastas.flatten()] }
    } else {
        def fasta = file(input, checkIfExists: true)
        ch_samples = Channel.of([[id: fastaSampleId(fasta)], [fasta]])
    }

    emit:
    samples = ch_samples // channel: [ val(meta), [ path(fasta), ... ] ]
}

workflow PIPELINE_COMPLETION {

    take:
    outdir // string: --outdir

    main:
    workflow.onComplete {
        if (workflow.success) {
            log.info("virnucpro-nf: done; results in ${outdir}")
        } else {
            log.error("virnucpro-nf: failed; see .nextflow.log and the failing task's .command.err (re-run with -resume)")
        }
    }
}
