/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    IMPORT MODULES / SUBWORKFLOWS / FUNCTIONS
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
*/
include { PREPARE                } from '../modules/local/prepare/main'
include { EMBED_DNA              } from '../modules/local/embed_dna/main'
include { EMBED_PROTEIN          } from '../modules/local/embed_protein/main'
include { MERGE                  } from '../modules/local/merge/main'
include { PREDICT                } from '../modules/local/predict/main'
include { SUMMARIZE              } from '../modules/local/summarize/main'
include { MODELS_DOWNLOAD        } from '../modules/local/models_download/main'
include { PROFILE                } from '../modules/local/profile/main'
include { MULTIQC                } from '../modules/nf-core/multiqc/main'
include { paramsSummaryMap       } from 'plugin/nf-schema'
include { paramsSummaryMultiqc   } from '../subworkflows/nf-core/utils_nfcore_pipeline'
include { softwareVersionsToYAML } from '../subworkflows/nf-core/utils_nfcore_pipeline'
include { methodsDescriptionText } from '../subworkflows/local/utils_nfcore_virnucpro_pipeline'

/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    FUNCTIONS
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
*/

// The fair-esm loader expects '<name>-contact-regression.pt' next to an ESM-2 checkpoint;
// stage it beside the model when it exists (an empty list stages nothing).
def esmAuxFiles(esm) {
    def aux = file(esm.toString().replaceAll(/\.pt$/, '') + '-contact-regression.pt')
    return aux.exists() ? [aux] : []
}

// Shard number from a prepare output name: <prefix>_0001.nuc.fa -> 1
def shardNumber(f) {
    def m = (f.name =~ /_(\d+)\.(nuc|prot)\.fa$/)
    if (!m) {
        error("Unexpected shard file name from prepare: ${f.name}")
    }
    return m[0][1] as int
}

// [ meta, nuc shards, prot shards, manifest.json ] -> one [ meta + shard info, nuc, prot ] per shard to embed.
// Shards without frames (manifest "frames": 0) are left out, so no GPU task loads a model for nothing; a sample
// whose shards are all empty (no stop-free frame anywhere) keeps its first shard, so it still flows through to
// SUMMARIZE and every one of its reads is reported with its status.
def shardsToEmbed(meta, nucs, prots, manifest_json) {
    def nuc_list  = (nucs  instanceof List ? nucs  : [nucs ]).sort { f -> shardNumber(f) }
    def prot_list = (prots instanceof List ? prots : [prots]).sort { f -> shardNumber(f) }
    if (nuc_list.size() != prot_list.size()) {
        error("prepare wrote ${nuc_list.size()} nucleotide but ${prot_list.size()} protein shards for ${meta.id}")
    }
    def manifest = new groovy.json.JsonSlurper().parseText(manifest_json.text)
    def frames   = manifest.shards.collectEntries { s -> [ (s.nuc): s.frames as long ] }
    def pairs    = [nuc_list, prot_list].transpose()
    pairs.each { pair ->
        if (shardNumber(pair[0]) != shardNumber(pair[1])) {
            error("Unpaired shard files for ${meta.id}: ${pair[0].name} / ${pair[1].name}")
        }
    }
    def kept = pairs.findAll { pair -> (frames[pair[0].name] ?: 0L) > 0L }
    if (!kept) {
        kept = pairs.take(1)
    }
    return kept.collect { pair ->
        [ meta + [ shard: shardNumber(pair[0]), n_shards: kept.size() ], pair[0], pair[1] ]
    }
}

/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    RUN MAIN WORKFLOW
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
*/

workflow VIRNUCPRO {

    take:
    ch_samplesheet // channel: [ val(meta), [ path(fasta), ... ] ]
    chunk_length   // integer: window length (300 or 500), also selects the classifier
    multiqc_config
    multiqc_logo
    multiqc_methods_description
    outdir

    main:

    def ch_versions = channel.empty()
    def ch_multiqc_files = channel.empty()

    //
    // Models: explicit paths win, then --models_dir, else MODELS_DOWNLOAD once. With --models_store the store folder
    // is handed to MODELS_DOWNLOAD, which keeps every file matching the store's checksums.sha256 and fetches only
    // what is missing or changed (a second run downloads nothing); the models are then read from the store, once
    // that task has verified it. No storeDir (it cannot carry the task's eval output; deprecated upstream).
    //
    def models_dir = params.models_dir ? params.models_dir.toString().replaceAll(/\/+$/, '') : null
    def dnabert    = params.dnabert    ?: (models_dir ? "${models_dir}/dnabert-s" : null)
    def esm        = params.esm        ?: (models_dir ? "${models_dir}/esm2_t36_3B_UR50D.pt" : null)
    def classifier = params.classifier ?: (models_dir ? "${models_dir}/${chunk_length}_model.pth" : null)

    def ch_dnabert = null
    def ch_esm = null
    def ch_classifier = null
    if (dnabert && esm && classifier) {
        ch_dnabert    = channel.value(file(dnabert, checkIfExists: true))
        ch_esm        = channel.value([file(esm, checkIfExists: true), esmAuxFiles(esm)])
        ch_classifier = channel.value(file(classifier, checkIfExists: true))
    } else {
        def store = params.models_store ? file(params.models_store.toString().replaceAll(/\/+$/, ''), type: 'dir') : null
        if (store) {
            store.mkdirs()
        }
        MODELS_DOWNLOAD(chunk_length, store ?: [])
        def verified = MODELS_DOWNLOAD.out.checksums
        def got_dnabert    = store ? verified.map { _sums -> file("${store}/dnabert-s") } : MODELS_DOWNLOAD.out.dnabert
        def got_classifier = store ? verified.map { _sums -> file("${store}/${chunk_length}_model.pth") } : MODELS_DOWNLOAD.out.classifier
        def got_esm        = store
            ? verified.map { _sums -> [file("${store}/esm2_t36_3B_UR50D.pt"), esmAuxFiles("${store}/esm2_t36_3B_UR50D.pt")] }
            : MODELS_DOWNLOAD.out.esm
                .combine(MODELS_DOWNLOAD.out.esm_aux.collect().ifEmpty([]).map { aux -> [aux] })
                .map { pt, aux -> [pt, aux] }
                .first()
        ch_dnabert    = dnabert    ? channel.value(file(dnabert, checkIfExists: true)) : got_dnabert
        ch_classifier = classifier ? channel.value(file(classifier, checkIfExists: true)) : got_classifier
        ch_esm        = esm ? channel.value([file(esm, checkIfExists: true), esmAuxFiles(esm)]) : got_esm
    }

    //
    // Token budget per forward pass: --profile_batch measures it on a GPU (-profile gpu), otherwise the
    // explicit --dna_tokens_per_batch / --protein_tokens_per_batch, otherwise 0 (the tool's default).
    //
    def ch_tpb_dna = null
    def ch_tpb_protein = null
    if (params.profile_batch && workflow.profile.tokenize(',').contains('gpu')) {
        PROFILE(ch_dnabert, ch_esm)
        def ch_profile = PROFILE.out.json
            .map { json -> new groovy.json.JsonSlurper().parseText(json.text) }
            .first()
        ch_tpb_dna     = ch_profile.map { p -> (p.dna.tokens_per_batch ?: 0) as long }
        ch_tpb_protein = ch_profile.map { p -> (p.protein.tokens_per_batch ?: 0) as long }
    } else {
        if (params.profile_batch) {
            log.warn("--profile_batch needs -profile gpu: using --dna_tokens_per_batch / --protein_tokens_per_batch")
        }
        ch_tpb_dna     = channel.value((params.dna_tokens_per_batch ?: 0) as long)
        ch_tpb_protein = channel.value((params.protein_tokens_per_batch ?: 0) as long)
    }

    //
    // PREPARE: one task per sample (all of the sample's FASTA files, staged apart), token-balanced shards.
    //
    PREPARE(ch_samplesheet, chunk_length)

    // One item per shard to embed; meta carries the shard number and the sample's count of embedded shards.
    def ch_shards = PREPARE.out.shards
        .join(PREPARE.out.manifest, failOnDuplicate: true, failOnMismatch: true)
        .flatMap { meta, nucs, prots, manifest -> shardsToEmbed(meta, nucs, prots, manifest) }

    //
    // Embeddings per shard (one GPU each under -profile gpu), then merge + predict per shard.
    //
    EMBED_DNA(ch_shards.map { meta, nuc, _prot -> [meta, nuc] }, ch_dnabert, ch_tpb_dna)
    EMBED_PROTEIN(ch_shards.map { meta, _nuc, prot -> [meta, prot] }, ch_esm, ch_tpb_protein)

    // join, not mix: a shard's two embeddings must meet by meta (sample + shard), never pair across shards
    MERGE(EMBED_DNA.out.h5.join(EMBED_PROTEIN.out.h5, failOnDuplicate: true, failOnMismatch: true))

    PREDICT(MERGE.out.h5, ch_classifier, chunk_length)

    //
    // Gather shards per sample. groupKey(sample, n_shards) releases a sample as soon as its last shard is
    // predicted; files are sorted by shard number so the SUMMARIZE command line (and its -resume hash) is stable.
    //
    def ch_frames = PREDICT.out.frames
        .map { meta, tsv ->
            def sample_meta = meta.findAll { k, _v -> !(k in ['shard', 'n_shards']) }
            [ groupKey(meta.id, meta.n_shards as int), sample_meta, meta.shard as int, tsv ]
        }
        .groupTuple()
        .map { key, metas, shard_numbers, tsvs ->
            def sorted = [shard_numbers, tsvs].transpose().sort { pair -> pair[0] }.collect { pair -> pair[1] }
            [ key.toString(), metas[0], sorted ]
        }

    // reads.tsv, manifest.json and the sample's FASTA files (same order as given to PREPARE) meet the frames by
    // sample id; SUMMARIZE checks every table against the manifest (a shard missing or given twice is refused)
    def ch_summarize = PREPARE.out.reads
        .join(PREPARE.out.manifest, failOnDuplicate: true, failOnMismatch: true)
        .join(ch_samplesheet, failOnDuplicate: true, failOnMismatch: true)
        .map { meta, reads, manifest, fastas -> [ meta.id, reads, manifest, fastas ] }
        .join(ch_frames, failOnDuplicate: true, failOnMismatch: true)
        .map { _id, reads, manifest, fastas, meta, frames -> [ meta, reads, manifest, frames, fastas ] }

    SUMMARIZE(ch_summarize, chunk_length)

    //
    // Collate and save software versions
    //
    def topic_versions = channel.topic("versions")
        .distinct()
        .branch { entry ->
            versions_file: entry instanceof Path
            versions_tuple: true
        }

    def topic_versions_string = topic_versions.versions_tuple
        .map { process, tool, version ->
            [ process[process.lastIndexOf(':')+1..-1], "  ${tool}: ${version}" ]
        }
        .groupTuple(by:0)
        .map { process, tool_versions ->
            tool_versions.unique().sort()
            "${process}:\n${tool_versions.join('\n')}"
        }

    def ch_collated_versions = softwareVersionsToYAML(ch_versions.mix(topic_versions.versions_file))
        .mix(topic_versions_string)
        .collectFile(
            storeDir: "${outdir}/pipeline_info",
            name:  'virnucpro_software_'  + 'mqc_'  + 'versions.yml',
            sort: true,
            newLine: true
        )

    //
    // MODULE: MultiQC (per-sample call counts from virus_summary.tsv as custom content, assets/multiqc_config.yml)
    //
    ch_multiqc_files = ch_multiqc_files.mix(ch_collated_versions)
    ch_multiqc_files = ch_multiqc_files.mix(SUMMARIZE.out.mqc.map { _meta, tsv -> tsv })
    def ch_summary_params = paramsSummaryMap(workflow, parameters_schema: "nextflow_schema.json")
    def ch_workflow_summary = channel.value(paramsSummaryMultiqc(ch_summary_params))
    ch_multiqc_files = ch_multiqc_files.mix(ch_workflow_summary.collectFile(name: 'workflow_summary_mqc.yaml'))
    def ch_multiqc_custom_methods_description = multiqc_methods_description
        ? file(multiqc_methods_description, checkIfExists: true)
        : file("${projectDir}/assets/methods_description_template.yml", checkIfExists: true)
    def ch_methods_description = channel.value(methodsDescriptionText(ch_multiqc_custom_methods_description))
    ch_multiqc_files = ch_multiqc_files.mix(ch_methods_description.collectFile(name: 'methods_description_mqc.yaml', sort: true))
    MULTIQC(
        ch_multiqc_files.flatten().collect().map { files ->
            [
                [id: 'virnucpro'],
                files,
                multiqc_config
                    ? file(multiqc_config, checkIfExists: true)
                    : file("${projectDir}/assets/multiqc_config.yml", checkIfExists: true),
                multiqc_logo ? file(multiqc_logo, checkIfExists: true) : [],
                [],
                [],
            ]
        }
    )

    emit:
    multiqc_report = MULTIQC.out.report.map { _meta, report -> [report] }.toList() // channel: /path/to/multiqc_report.html
    summary        = SUMMARIZE.out.summary      // channel: [ val(meta), path(virus_summary.tsv) ]
    versions       = ch_versions                // channel: [ path(versions.yml) ]
}

/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    THE END
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
*/
