"""The embedded runner: every stage in one process on one machine, resumable after a kill.

Layout of ``--outdir``::

    prediction_results.txt, prediction_results_highestscore.csv, reads.tsv   final tables
    manifest.json, run.log                                                   what ran, with checksums
    manifest.json.stamp.json        confirms the final tables: what made them (a run removes tables it would not make)
    work/prepare/        shards, reads.tsv and manifest of the prepare stage
    work/shards/         per shard: {shard}.dna.h5, .protein.h5, .features.h5, .frames.tsv (+ .stamp.json each)

Each shard output gets a stamp (:mod:`virnucpro.stamps`: a fingerprint of its inputs) written after the output was
renamed into place; a re-run reuses only complete, stamped outputs. An exclusive lock on the folder keeps two runs
from writing into it at once.

Embedding is one work queue over all local devices (:mod:`virnucpro.embed_jobs`): DNABERT-S and ESM-2 jobs mixed so
no device waits for a stage to end; a shard's merge and prediction run here as soon as both of its embeddings are
confirmed.

Before anything is written, :func:`virnucpro.run_checks.validate_run` checks what would otherwise fail hours later: every input can be
opened, the option values, that ``--outdir`` can be a folder, and all three models (paths, formats, and that the
classifier's input width is DNABERT-S + ESM-2). ``run.log`` records the command line, version, start and end and the
duration of every stage; ``manifest.json`` the same with library versions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import time
from pathlib import Path
from typing import Any

from virnucpro import __version__
from virnucpro.atomic import atomic_text, make_output_folder, remove_stale_temps
from virnucpro.checksum import file_sha256
from virnucpro.embed_jobs import embedding_queue, plan_devices, plan_embeddings, run_embeddings, shard_stem
from virnucpro.lock import folder_lock
from virnucpro.predict import merge_features, predict_frames
from virnucpro.prepare import default_workers, prepare, prepare_parameters
from virnucpro.run_checks import RunChecks, validate_run
from virnucpro.runconfig import SHARD_PREFIX, RunConfig
from virnucpro.runlog import HeldRecords, StageClock, final_line, human_only, library_versions, utc
from virnucpro.shards_check import tables_by_shard
from virnucpro.stamps import cheap_stage, is_current, stamp_path, write_stamp
from virnucpro.summarize import OUTPUT_FILES, sample_name, summarize

log = logging.getLogger("virnucpro.run")


def _prepare_current(cfg: RunConfig, prep_dir: Path) -> dict | None:
    """The prepare manifest of an earlier run when it can be reused as is, else None.

    The inputs are hashed only when there is a manifest with the same parameters to compare them with: a fresh run
    reads its inputs once (prepare hashes them while reading), not once more here.
    """
    try:
        manifest = json.loads((prep_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    wanted = prepare_parameters(cfg.chunk_length, cfg.n_shards, cfg.tokens_per_shard, SHARD_PREFIX)
    recorded_inputs = [i.get("sha256") for i in manifest.get("inputs", [])]
    same = (
        manifest.get("parameters") == wanted
        and len(recorded_inputs) == len(cfg.inputs)
        and recorded_inputs == [file_sha256(p) for p in cfg.inputs]
    )
    if not same:
        log.info("re-preparing: inputs or parameters changed since %s", prep_dir / "manifest.json")
        return None
    for shard in manifest.get("shards", []):
        for key in ("nuc", "prot"):
            path = prep_dir / shard[key]
            if not path.is_file() or file_sha256(path) != shard.get(f"{key}_sha256"):
                log.info("re-preparing: shard file %s is missing or damaged (checksum differs from the manifest)", path.name)
                return None
    log.info("reusing prepared shards in %s", prep_dir)
    return manifest


#: The final tables and manifest.json are confirmed together by one stamp beside manifest.json, written last.
FINAL_STAMP_OF = "manifest.json"


def _final_fingerprint(cfg: RunConfig, input_sha256: list[str]) -> dict[str, Any]:
    """What the final tables depend on: the inputs, chunk length, both models as run (precision included), the
    classifier. The same things the shard stamps record, so "current" means the same for tables and shards."""
    from virnucpro.embed import describe_model

    return {
        "inputs_sha256": input_sha256, "chunk_length": cfg.chunk_length, "store_dtype": cfg.store_dtype,
        "dnabert": describe_model("dna", cfg.dnabert, device=cfg.devices[0], precision=cfg.precision),
        "esm": describe_model("protein", cfg.esm, device=cfg.devices[0], precision=cfg.precision),
        "classifier_sha256": file_sha256(cfg.classifier),
    }


def _remove_stale_tables(cfg: RunConfig, outdir: Path) -> None:
    """Before any work: delete final tables this command would not make, so a run stopped before its own summarize
    never leaves an earlier run's tables looking current (another input, option or model; or an interrupted run that
    never confirmed them). The stamp goes first: a kill in between leaves nothing confirmed, removed next time."""
    present = [name for name in (*OUTPUT_FILES, FINAL_STAMP_OF) if (outdir / name).exists()]
    if not present:
        return
    fingerprint = _final_fingerprint(cfg, [file_sha256(p) for p in cfg.inputs])  # inputs hashed once: memoised
    if is_current(outdir / FINAL_STAMP_OF, fingerprint, "final tables"):
        return  # this command's own tables: resuming keeps them until it rewrites them
    stamp_path(outdir / FINAL_STAMP_OF).unlink(missing_ok=True)
    for name in present:
        (outdir / name).unlink(missing_ok=True)
    log.warning("removed the final tables of an earlier run in %s before starting (not made by this command's inputs, "
                "options and models): %s", outdir, ", ".join(present))


def run_pipeline(cfg: RunConfig) -> dict[str, Any]:
    """Run (or resume) all stages into ``cfg.outdir``; returns the run manifest.

    Nothing is created before :func:`validate_run` passed; its log lines are then replayed into run.log.
    """
    outdir = Path(cfg.outdir)
    started = time.time()
    clock = StageClock()
    root = logging.getLogger("virnucpro")
    held = HeldRecords()
    root.addHandler(held)
    try:
        with clock("validate"):
            checks = validate_run(cfg)
    finally:
        root.removeHandler(held)
    checks = dataclasses.replace(checks, warnings=tuple(r.getMessage() for r in held.records if r.levelno >= logging.WARNING))
    make_output_folder(outdir)
    with folder_lock(outdir):
        handler = logging.FileHandler(outdir / "run.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        handler.addFilter(human_only)
        root.addHandler(handler)
        try:
            command = shlex.join(cfg.command_line) if cfg.command_line else "(library call)"
            log.info("virnucpro %s started %s: %s", __version__, utc(started), command)
            for record in held.records:
                handler.handle(record)
            try:
                manifest = _run_locked(cfg, outdir, checks, clock, started)
            except BaseException as exc:
                log.info("run failed after %.1f s (%s: %s)", time.time() - started, type(exc).__name__, exc)
                raise
            log.info("virnucpro finished %s after %.1f s", utc(time.time()), time.time() - started)
            return manifest
        finally:
            root.removeHandler(handler)
            handler.close()


def _run_locked(cfg: RunConfig, outdir: Path, checks: RunChecks, clock: StageClock, started: float) -> dict[str, Any]:
    prep_dir, work = outdir / "work" / "prepare", outdir / "work" / "shards"
    work.mkdir(parents=True, exist_ok=True)
    for folder in (outdir, prep_dir, work):
        if folder.exists():
            remove_stale_temps(folder)
    cfg.devices = cfg.devices or plan_devices(cfg.device)
    _remove_stale_tables(cfg, outdir)
    published = checks.published_classifier
    with clock("prepare"):
        manifest = _prepare_current(cfg, prep_dir) or prepare(
            cfg.inputs, prep_dir, cfg.chunk_length, n_shards=cfg.n_shards, tokens_per_shard=cfg.tokens_per_shard,
            prefix=SHARD_PREFIX, progress=cfg.progress, workers=default_workers(),
        )
    shards = manifest["shards"]
    dna, dna_jobs = plan_embeddings(cfg, "dna", cfg.dnabert, cfg.tokens_per_batch_dna, shards, prep_dir, work)
    prot, prot_jobs = plan_embeddings(cfg, "protein", cfg.esm, cfg.tokens_per_batch_protein, shards, prep_dir, work)
    classifier_sha = file_sha256(cfg.classifier)
    tables = [work / f"{shard_stem(shard)}.frames.tsv" for shard in shards]
    cheap_seconds = 0.0

    def merge_and_predict(key: str) -> None:
        """The cheap per-shard stages, run as soon as both embeddings of the shard are confirmed."""
        nonlocal cheap_seconds
        start = time.perf_counter()
        stem = shard_stem(next(s for s in shards if s["nuc"] == key))
        features, frames = work / f"{stem}.features.h5", work / f"{stem}.frames.tsv"
        fp_merge = {"dna": json.loads(stamp_path(dna[key]).read_text()), "protein": json.loads(stamp_path(prot[key]).read_text())}
        cheap_stage(features, fp_merge, "features", lambda: merge_features(dna[key], prot[key], features))
        fp_predict = {"features": fp_merge, "classifier_sha256": classifier_sha}
        cheap_stage(frames, fp_predict, "predictions", lambda: predict_frames(features, cfg.classifier, frames))
        cheap_seconds += time.perf_counter() - start

    waiting = {shard["nuc"]: set() for shard in shards}
    for job in dna_jobs + prot_jobs:
        waiting[job.shard].add(job.kind)
    embed_seconds = {"dna": 0.0, "protein": 0.0}
    with clock("embed"):
        for key in [k for k, kinds in waiting.items() if not kinds]:
            merge_and_predict(key)
        for job, result in run_embeddings(cfg, embedding_queue(dna_jobs, prot_jobs)):
            embed_seconds[job.kind] += result["seconds"]
            waiting[job.shard].discard(job.kind)
            if not waiting[job.shard]:
                merge_and_predict(job.shard)
    for stage, seconds in (("embed-dna", embed_seconds["dna"]), ("embed-protein", embed_seconds["protein"]),
                           ("merge+predict", cheap_seconds)):
        clock.record(stage, seconds)
    with clock("summarize"):
        counts = summarize(prep_dir / "reads.tsv", tables_by_shard(manifest, tables), outdir, inputs=cfg.inputs, chunk_length=cfg.chunk_length,
                           title=sample_name(cfg.inputs), run_warnings=checks.warnings)
    run_manifest = {
        "tool": "virnucpro",
        "version": __version__,
        "stage": "run",
        "command_line": cfg.command_line,
        "started": utc(started),
        "finished": None,  # set just below, when everything but this file is written
        "durations_s": clock.durations,
        "libraries": library_versions(),
        "parameters": {
            "chunk_length": cfg.chunk_length,
            "shards": cfg.n_shards,
            "tokens_per_shard": cfg.tokens_per_shard,
            "tokens_per_batch_dna": cfg.tokens_per_batch_dna,
            "tokens_per_batch_protein": cfg.tokens_per_batch_protein,
            "store_dtype": cfg.store_dtype,
            "device": cfg.device,
            "devices": cfg.devices,
            "workers": cfg.workers,
            "precision": cfg.precision,
        },
        "inputs": manifest["inputs"],
        "models": {
            "dnabert": json.loads(stamp_path(next(iter(dna.values()))).read_text()) if dna else None,
            "esm": json.loads(stamp_path(next(iter(prot.values()))).read_text()) if prot else None,
            "classifier": {"path": str(cfg.classifier), "sha256": classifier_sha, "published": published},
        },
        "counts": counts,
        "outputs": {name: file_sha256(outdir / name) for name in OUTPUT_FILES},
    }
    for model in ("dnabert", "esm"):
        if run_manifest["models"][model]:
            run_manifest["models"][model].pop("input_sha256", None)
    run_manifest["finished"] = utc(time.time())
    with atomic_text(outdir / "manifest.json") as out:
        json.dump(run_manifest, out, indent=2)
        out.write("\n")
    write_stamp(outdir / FINAL_STAMP_OF, _final_fingerprint(cfg, [i["sha256"] for i in manifest["inputs"]]))
    log.info("%s", final_line(counts, outdir))
    return run_manifest


def cli_run(args: argparse.Namespace) -> int:
    """``virnucpro run``."""
    run_pipeline(
        RunConfig(
            inputs=list(args.inputs),
            outdir=args.outdir,
            chunk_length=args.chunk_length,
            dnabert=args.dnabert,
            esm=args.esm,
            classifier=args.classifier,
            n_shards=args.shards,
            tokens_per_shard=args.tokens_per_shard,
            tokens_per_batch_dna=args.tokens_per_batch_dna,
            tokens_per_batch_protein=args.tokens_per_batch_protein,
            store_dtype=args.store_dtype,
            device=args.device,
            precision=args.precision,
            progress=not args.quiet,
            allow_chunk_mismatch=args.allow_chunk_mismatch,
            workers=getattr(args, "workers", None),
            compile=args.compile,
            command_line=list(getattr(args, "command_line", [])),
        )
    )
    return 0


__all__ = ["RunConfig", "run_pipeline", "cli_run", "folder_lock", "is_current", "plan_devices"]
