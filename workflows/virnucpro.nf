/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    VIRNUCPRO: prepare -> (embed-dna | embed-protein) -> merge -> predict -> summarize
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
*/

include { PREPARE         } from '../modules/local/prepare/main'
include { EMBED_DNA       } from '../modules/local/embed_dna/main'
include { EMBED_PROTEIN   } from '../modules/local/embed_protein/main'
include { MERGE           } from '../modules/local/merge/main'
include { PREDICT         } from '../modules/local/predict/main'
include { SUMMARIZE       } from '../modules/local/summarize/main'
include { MODELS_DOWNLOAD } from '../modules/local/models_download/main'
include { PROFILE         } from '../modules/local/profile/main'

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

workflow VIRNUCPRO {

    take:
    ch_samples // channel: [ val(meta), [ path(fasta), ... ] ]

    main:
    ch_versions = Channel.empty()

    //
    // Models: explicit paths win, then --models_dir, else download once.
    //
    def models_dir = params.models_dir ? params.models_dir.toString().replaceAll(/\/+$/, '') : null
    def dnabert    = params.dnabert    ?: (models_dir ? "${models_dir}/dnabert-s" : null)
    def esm        = params.esm        ?: (models_dir ? "${models_dir}/esm2_t36_3B_UR50D.pt" : null)
    def classifier = params.classifier ?: (models_dir ? "${models_dir}/${params.chunk_length}_model.pth" : null)

    if (dnabert && esm && classifier) {
        ch_dnabert    = Channel.value(file(dnabert, checkIfExists: true))
        ch_esm        = Channel.value([file(esm, checkIfExists: true), esmAuxFiles(esm)])
        ch_classifier = Channel.value(file(classifier, checkIfExists: true))
    } else {
        MODELS_DOWNLOAD(params.chunk_length)
        ch_versions = ch_versions.mix(MODELS_DOWNLOAD.out.versions)
        ch_dnabert    = dnabert    ? Channel.value(file(dnabert, checkIfExists: true)) : MODELS_DOWNLOAD.out.dnabert
        ch_classifier = classifier ? Channel.value(file(classifier, checkIfExists: true)) : MODELS_DOWNLOAD.out.classifier
        ch_esm        = esm
            ? Channel.value([file(esm, checkIfExists: true), esmAuxFiles(esm)])
            : MODELS_DOWNLOAD.out.esm
                .combine(MODELS_DOWNLOAD.out.esm_aux.collect().ifEmpty([]).map { aux -> [aux] })
                .map { pt, aux -> [pt, aux] }
                .first()
    }

    //
    // Token budget per forward pass: --profile_batch measures it on the GPU, otherwise the
    // explicit --dna_tokens_per_batch / --protein_tokens_per_batch, otherwise 0 (tool default).
    //
    if (params.profile_batch && params.use_gpu) {
        PROFILE(ch_dnabert, ch_esm)
        ch_versions = ch_versions.mix(PROFILE.out.versions)
        ch_profile  = PROFILE.out.json
            .map { json -> new groovy.json.JsonSlurper().parseText(json.text) }
            .first()
        ch_tpb_dna     = ch_profile.map { p -> (p.dna.tokens_per_batch ?: 0) as long }
        ch_tpb_protein = ch_profile.map { p -> (p.protein.tokens_per_batch ?: 0) as long }
    } else {
        ch_tpb_dna     = Channel.value((params.dna_tokens_per_batch ?: 0) as long)
        ch_tpb_protein = Channel.value((params.protein_tokens_per_batch ?: 0) as long)
    }

    //
    // PREPARE: one task per sample (all of the sample's FASTA files), N token-balanced shards.
    //
    PREPARE(ch_samples)
    ch_versions = ch_versions.mix(PREPARE.out.versions.first())

    // Fan out transpose-style: one item per shard, meta carries shard number and shard count.
    ch_shards = PREPARE.out.shards
        .flatMap { meta, nucs, prots ->
            def nuc_list  = (nucs  instanceof List ? nucs  : [nucs ]).sort { f -> shardNumber(f) }
            def prot_list = (prots instanceof List ? prots : [prots]).sort { f -> shardNumber(f) }
            if (nuc_list.size() != prot_list.size()) {
                error("prepare wrote ${nuc_list.size()} nucleotide but ${prot_list.size()} protein shards for ${meta.id}")
            }
            def n = nuc_list.size()
            [nuc_list, prot_list].transpose().collect { nuc, prot ->
                if (shardNumber(nuc) != shardNumber(prot)) {
                    error("Unpaired shard files for ${meta.id}: ${nuc.name} / ${prot.name}")
                }
                [ meta + [shard: shardNumber(nuc), n_shards: n], nuc, prot ]
            }
        }

    // Samples without any stop-free frame get no shard: say so instead of silently dropping them.
    PREPARE.out.reads
        .map { meta, _reads -> [meta.id, meta] }
        .join(PREPARE.out.shards.map { meta, _n, _p -> [meta.id, true] }, remainder: true)
        .filter { _id, _meta, has_shards -> !has_shards }
        .subscribe { id, _meta, _has -> log.warn("Sample '${id}': no stop-free frame, nothing to predict") }

    //
    // Embeddings (GPU) per shard, then merge + predict per shard.
    //
    EMBED_DNA(ch_shards.map { meta, nuc, _prot -> [meta, nuc] }, ch_dnabert, ch_tpb_dna)
    EMBED_PROTEIN(ch_shards.map { meta, _nuc, prot -> [meta, prot] }, ch_esm, ch_tpb_protein)
    ch_versions = ch_versions.mix(EMBED_DNA.out.versions.first(), EMBED_PROTEIN.out.versions.first())

    MERGE(EMBED_DNA.out.h5.join(EMBED_PROTEIN.out.h5, failOnDuplicate: true, failOnMismatch: true))
    ch_versions = ch_versions.mix(MERGE.out.versions.first())

    PREDICT(MERGE.out.h5, ch_classifier)
    ch_versions = ch_versions.mix(PREDICT.out.versions.first())

    //
    // Gather shards per sample. groupKey(sample, n_shards) releases a sample as soon as its
    // last shard is predicted; files are sorted by shard number so -resume hashes are stable.
    //
    ch_frames = PREDICT.out.frames
        .map { meta, tsv ->
            def sample_meta = meta.findAll { k, _v -> !(k in ['shard', 'n_shards']) }
            [ groupKey(meta.id, meta.n_shards as int), sample_meta, meta.shard as int, tsv ]
        }
        .groupTuple()
        .map { key, metas, shard_numbers, tsvs ->
            def sorted = [shard_numbers, tsvs].transpose().sort { pair -> pair[0] }.collect { pair -> pair[1] }
            [ key.toString(), metas[0], sorted ]
        }

    ch_summarize = PREPARE.out.reads
        .map { meta, reads -> [meta.id, reads] }
        .join(ch_frames)
        .map { _id, reads, meta, frames -> [meta, reads, frames] }

    SUMMARIZE(ch_summarize)
    ch_versions = ch_versions.mix(SUMMARIZE.out.versions.first())

    //
    // Software versions -> ${outdir}/pipeline_info/virnucpro_software_versions.yml
    //
    ch_versions_yml = ch_versions
        .map { f -> f.text.trim() }
        .unique()
        .collectFile(
            name: 'virnucpro_software_versions.yml',
            storeDir: "${params.outdir}/pipeline_info",
            newLine: true,
            sort: true
        )

    emit:
    results      = SUMMARIZE.out.results      // channel: [ val(meta), path(prediction_results.txt) ]
    highestscore = SUMMARIZE.out.highestscore // channel: [ val(meta), path(prediction_results_highestscore.csv) ]
    reads        = SUMMARIZE.out.reads        // channel: [ val(meta), path(reads.tsv) ]
    versions     = ch_versions_yml            // channel: path(versions yml)
}
