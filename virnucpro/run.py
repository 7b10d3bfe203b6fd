"""The embedded runner: every stage in one process on one machine, resumable after a kill.

Layout of ``--outdir``::

    prediction_results.txt, prediction_results_highestscore.csv, reads.tsv   final tables
    manifest.json, run.log                                                   what ran, with checksums
    work/prepare/        shards, reads.tsv and manifest of the prepare stage
    work/shards/         per shard: {shard}.dna.h5, .protein.h5, .features.h5, .frames.tsv (+ .stamp.json each)

Each shard output gets a stamp (a fingerprint of its inputs: shard file checksum, model checksum, precision,
parameters) written after the output was renamed into place. A re-run reuses an output only when the file is complete
and its stamp matches; anything else is recomputed, with a log line saying why. An exclusive lock on the folder keeps
two runs from writing into it at once. With several local GPUs, embedding shards are spread over all of them.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterator

from virnucpro import __version__
from virnucpro.atomic import atomic_text, remove_stale_temps
from virnucpro.checksum import file_sha256
from virnucpro.errors import VirNucProError
from virnucpro.h5io import h5_is_complete
from virnucpro.predict import merge_features, predict_frames
from virnucpro.prepare import prepare, prepare_parameters
from virnucpro.summarize import FRAMES_FILE, READS_FILE, WINDOWS_FILE, summarize

log = logging.getLogger("virnucpro.run")

SHARD_PREFIX = "shard"


@dataclass
class RunConfig:
    """Everything that decides the outputs of a run (and so what a resumed run may reuse)."""

    inputs: list[Path]
    outdir: Path
    chunk_length: int
    dnabert: str
    esm: str
    classifier: Path
    n_shards: int | None = None
    tokens_per_shard: int | None = None
    tokens_per_batch_dna: int | None = None
    tokens_per_batch_protein: int | None = None
    store_dtype: str = "float32"
    device: str = "auto"
    precision: str = "auto"
    progress: bool = True
    devices: list[str] = field(default_factory=list)  # filled by plan_devices()


@contextlib.contextmanager
def folder_lock(outdir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``outdir`` for the run; a second run on the same folder fails at once."""
    outdir.mkdir(parents=True, exist_ok=True)
    fh = open(outdir / ".virnucpro.lock", "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise VirNucProError(f"{outdir}: another virnucpro run is using this folder (lock held); wait for it or use another --outdir") from None
    try:
        yield
    finally:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


def _stamp_path(output: Path) -> Path:
    return output.with_name(output.name + ".stamp.json")


def is_current(output: Path, fingerprint: dict[str, Any], what: str) -> bool:
    """True when ``output`` is complete and was made from exactly ``fingerprint``; logs why it is not."""
    stamp = _stamp_path(output)
    if not output.exists():
        return False
    complete = h5_is_complete(output) if output.suffix == ".h5" else True
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        recorded = None
    if complete and recorded == fingerprint:
        return True
    if not complete:
        reason = "incomplete or corrupt file"
    elif recorded is None:
        reason = "no stamp (interrupted before it was confirmed)"
    else:
        changed = sorted(k for k in set(fingerprint) | set(recorded) if fingerprint.get(k) != recorded.get(k))
        reason = f"changed {', '.join(changed)}"
    log.info("recomputing %s %s: %s", what, output.name, reason)
    return False


def write_stamp(output: Path, fingerprint: dict[str, Any]) -> None:
    with atomic_text(_stamp_path(output)) as out:
        json.dump(fingerprint, out, sort_keys=True)


def _prepare_current(cfg: RunConfig, prep_dir: Path, inputs_sha: list[str]) -> dict | None:
    try:
        manifest = json.loads((prep_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    wanted = prepare_parameters(cfg.chunk_length, cfg.n_shards, cfg.tokens_per_shard, SHARD_PREFIX)
    recorded_inputs = [i.get("sha256") for i in manifest.get("inputs", [])]
    same = manifest.get("parameters") == wanted and recorded_inputs == inputs_sha
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


def plan_devices(device: str) -> list[str]:
    """``auto`` on a machine with several GPUs → one worker per GPU; otherwise the single device asked for."""
    import torch

    if device == "auto" and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [device]


def _embed_worker(kind: str, model: str, device: str, precision: str, jobs: list[tuple[str, str, int | None, str, dict]], progress: bool) -> list[str]:
    """Embed a list of (input, output, tokens_per_batch, store_dtype, fingerprint) jobs with one loaded model."""
    from virnucpro.embed import load_embedder

    embedder = load_embedder(kind, model, device=device, precision=precision)
    done = []
    for input_fa, output, tokens, store_dtype, fingerprint in jobs:
        embedder.embed_fasta(Path(input_fa), Path(output), tokens_per_batch=tokens, store_dtype=store_dtype, progress=progress)
        write_stamp(Path(output), fingerprint)
        done.append(output)
    return done


def _shard_stem(shard: dict) -> str:
    """``shard_0001`` for the manifest entry of ``shard_0001.nuc.fa``: the name every per-shard output starts with."""
    return Path(shard["nuc"]).name.split(".")[0]


def _embed_stage(cfg: RunConfig, kind: str, model: str, tokens: int | None, shards: list[dict], prep_dir: Path, work: Path) -> dict[str, Path]:
    """Embed every shard not already current; returns shard name → output path."""
    source_key = "nuc" if kind == "dna" else "prot"
    from virnucpro.embed import describe_model

    ident = describe_model(kind, model, device=cfg.devices[0], precision=cfg.precision)
    outputs: dict[str, Path] = {}
    todo: list[tuple[str, str, int | None, str, dict]] = []
    for shard in shards:
        src = prep_dir / shard[source_key]
        out = work / f"{_shard_stem(shard)}.{'dna' if kind == 'dna' else 'protein'}.h5"
        fingerprint = {"input_sha256": file_sha256(src), "store_dtype": cfg.store_dtype, **ident}
        outputs[shard["nuc"]] = out
        if not is_current(out, fingerprint, f"{kind} embeddings"):
            todo.append((str(src), str(out), tokens, cfg.store_dtype, fingerprint))
    log.info("%s embeddings: %d/%d shard(s) current, %d to compute", kind, len(shards) - len(todo), len(shards), len(todo))
    if not todo:
        return outputs
    log.info("embedding %d shard(s) with %s on %s", len(todo), model, ", ".join(cfg.devices))
    if len(cfg.devices) == 1:
        _embed_worker(kind, model, cfg.devices[0], cfg.precision, todo, cfg.progress)
    else:
        with ProcessPoolExecutor(len(cfg.devices), mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(_embed_worker, kind, model, dev, cfg.precision, todo[i :: len(cfg.devices)], False)
                for i, dev in enumerate(cfg.devices)
            ]
            for fut in futures:
                fut.result()
    return outputs


def _cheap_stage(output: Path, fingerprint: dict[str, Any], what: str, make: Callable[[], object]) -> None:
    if not is_current(output, fingerprint, what):
        make()
        write_stamp(output, fingerprint)


def run_pipeline(cfg: RunConfig) -> dict[str, Any]:
    """Run (or resume) all stages into ``cfg.outdir``; returns the run manifest."""
    outdir = Path(cfg.outdir)
    with folder_lock(outdir):
        handler = logging.FileHandler(outdir / "run.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        logging.getLogger("virnucpro").addHandler(handler)
        try:
            return _run_locked(cfg, outdir)
        finally:
            logging.getLogger("virnucpro").removeHandler(handler)
            handler.close()


def _run_locked(cfg: RunConfig, outdir: Path) -> dict[str, Any]:
    prep_dir, work = outdir / "work" / "prepare", outdir / "work" / "shards"
    work.mkdir(parents=True, exist_ok=True)
    for folder in (outdir, prep_dir, work):
        if folder.exists():
            remove_stale_temps(folder)
    cfg.devices = cfg.devices or plan_devices(cfg.device)
    missing = [p for p in cfg.inputs if not Path(p).is_file()]
    if missing:
        raise VirNucProError(f"{missing[0]}: no such input file")
    inputs_sha = [file_sha256(p) for p in cfg.inputs]
    manifest = _prepare_current(cfg, prep_dir, inputs_sha) or prepare(
        cfg.inputs, prep_dir, cfg.chunk_length, n_shards=cfg.n_shards, tokens_per_shard=cfg.tokens_per_shard,
        prefix=SHARD_PREFIX, progress=cfg.progress,
    )
    shards = manifest["shards"]
    dna = _embed_stage(cfg, "dna", cfg.dnabert, cfg.tokens_per_batch_dna, shards, prep_dir, work)
    prot = _embed_stage(cfg, "protein", cfg.esm, cfg.tokens_per_batch_protein, shards, prep_dir, work)
    classifier_sha = file_sha256(cfg.classifier)
    tables = []
    for shard in shards:
        key = shard["nuc"]
        stem = _shard_stem(shard)
        features, frames = work / f"{stem}.features.h5", work / f"{stem}.frames.tsv"
        fp_merge = {"dna": json.loads(_stamp_path(dna[key]).read_text()), "protein": json.loads(_stamp_path(prot[key]).read_text())}
        _cheap_stage(features, fp_merge, "features", lambda: merge_features(dna[key], prot[key], features))
        fp_predict = {"features": fp_merge, "classifier_sha256": classifier_sha}
        _cheap_stage(frames, fp_predict, "predictions", lambda: predict_frames(features, cfg.classifier, frames))
        tables.append(frames)
    counts = summarize(prep_dir / "reads.tsv", tables, outdir)
    run_manifest = {
        "tool": "virnucpro",
        "version": __version__,
        "stage": "run",
        "parameters": {
            "chunk_length": cfg.chunk_length,
            "shards": cfg.n_shards,
            "tokens_per_shard": cfg.tokens_per_shard,
            "tokens_per_batch_dna": cfg.tokens_per_batch_dna,
            "tokens_per_batch_protein": cfg.tokens_per_batch_protein,
            "store_dtype": cfg.store_dtype,
            "device": cfg.device,
            "devices": cfg.devices,
            "precision": cfg.precision,
        },
        "inputs": manifest["inputs"],
        "models": {
            "dnabert": json.loads(_stamp_path(next(iter(dna.values()))).read_text()) if dna else None,
            "esm": json.loads(_stamp_path(next(iter(prot.values()))).read_text()) if prot else None,
            "classifier": {"path": str(cfg.classifier), "sha256": classifier_sha},
        },
        "counts": counts,
        "outputs": {name: file_sha256(outdir / name) for name in (FRAMES_FILE, WINDOWS_FILE, READS_FILE)},
    }
    for model in ("dnabert", "esm"):
        if run_manifest["models"][model]:
            run_manifest["models"][model].pop("input_sha256", None)
    with atomic_text(outdir / "manifest.json") as out:
        json.dump(run_manifest, out, indent=2)
        out.write("\n")
    log.info("done: %s", ", ".join(f"{k}={v}" for k, v in counts.items()))
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
        )
    )
    return 0


__all__ = ["RunConfig", "run_pipeline", "cli_run", "folder_lock", "is_current", "plan_devices"]
