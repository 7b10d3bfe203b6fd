"""The embedding work of ``virnucpro run``: one job per shard and model, planned against the resume stamps and run
over every local device by :mod:`virnucpro.workqueue` (a worker per GPU keeps each model loaded between jobs)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from virnucpro.checksum import file_sha256
from virnucpro.runconfig import RunConfig
from virnucpro.stamps import is_current, write_stamp

log = logging.getLogger("virnucpro.run")


def plan_devices(device: str) -> list[str]:
    """The embedding workers: one per device.

    ``auto`` → every visible CUDA GPU (or ``cpu``); ``cuda`` → every GPU; a comma-separated list (``cuda:0,cuda:2``,
    or ``cpu,cpu`` to exercise the queue without GPUs) → one worker per entry; anything else → that single device.
    """
    import torch

    spec = (device or "auto").strip().lower()
    if "," in spec:
        return [part.strip() for part in spec.split(",") if part.strip()]
    if spec in ("auto", "cuda") and torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [spec]


@dataclass(frozen=True)
class EmbedJob:
    """One shard × one model: what a worker needs to embed it and confirm it (the stamp)."""

    kind: str
    model: str
    shard: str  # the shard's key in the prepare manifest (its nucleotide file name)
    input: str
    output: str
    tokens_per_batch: int | None
    store_dtype: str
    fingerprint: dict
    frames: int


@dataclass(frozen=True)
class EngineOptions:
    """Per-run settings every worker applies to the models it loads."""

    precision: str
    workers: int | None
    progress: bool
    compile: bool = False


#: Models loaded by this process, kept between jobs: ``(kind, model, device) → Embedder``. A worker process loads
#: each model once for the whole run; the in-process (single device) path clears it when the run ends.
_LOADED: dict[tuple[str, str, str], Any] = {}


def embed_job(index: int, device: str, item: tuple[EmbedJob, EngineOptions]) -> dict[str, Any]:
    """Run in the worker that pulled the job: embed the shard with this device's copy of the model, then stamp it."""
    job, options = item
    key = (job.kind, job.model, device)
    if key not in _LOADED:
        from virnucpro.embed import load_embedder  # makes a cuda:N device current (virnucpro.device.use_device)

        _LOADED[key] = load_embedder(
            job.kind, job.model, device=device, precision=options.precision, compile=options.compile, workers=options.workers
        )
    stats = _LOADED[key].embed_fasta(
        Path(job.input), Path(job.output), tokens_per_batch=job.tokens_per_batch, store_dtype=job.store_dtype,
        progress=options.progress, total=job.frames,
    )
    write_stamp(Path(job.output), job.fingerprint)
    return {"worker": index, "device": device, "seconds": float(stats.get("seconds", 0.0)), "sequences": stats.get("sequences", 0)}


def shard_stem(shard: dict) -> str:
    """``shard_0001`` for the manifest entry of ``shard_0001.nuc.fa``: the name every per-shard output starts with."""
    return Path(shard["nuc"]).name.split(".")[0]


def plan_embeddings(cfg: RunConfig, kind: str, model: str, tokens: int | None, shards: list[dict], prep_dir: Path, work: Path) -> tuple[dict[str, Path], list[EmbedJob]]:
    """Shard name → output path for ``kind``, and the jobs for the outputs that are not already current."""
    source_key = "nuc" if kind == "dna" else "prot"
    from virnucpro.embed import describe_model

    ident = describe_model(kind, model, device=cfg.devices[0], precision=cfg.precision)
    outputs: dict[str, Path] = {}
    todo: list[EmbedJob] = []
    for shard in shards:
        src = prep_dir / shard[source_key]
        out = work / f"{shard_stem(shard)}.{'dna' if kind == 'dna' else 'protein'}.h5"
        fingerprint = {"input_sha256": file_sha256(src), "store_dtype": cfg.store_dtype, **ident}
        outputs[shard["nuc"]] = out
        if not is_current(out, fingerprint, f"{kind} embeddings"):
            todo.append(EmbedJob(kind, model, shard["nuc"], str(src), str(out), tokens, cfg.store_dtype, fingerprint,
                                 int(shard.get("frames", 0)) or None))
    log.info("%s embeddings: %d/%d shard(s) current, %d to compute", kind, len(shards) - len(todo), len(shards), len(todo))
    return outputs, todo


def embedding_queue(dna_jobs: list[EmbedJob], protein_jobs: list[EmbedJob]) -> list[EmbedJob]:
    """One queue for both models, shard by shard, the expensive ESM-2 job before the shard's DNABERT-S job.

    No barrier between the two models, so no device waits for the others to finish a stage; shards complete one
    after the other (their merge and prediction can start while the devices go on); the queue ends with the short
    DNABERT-S jobs, which evens out the finish across devices.
    """
    by_shard: dict[str, list[EmbedJob]] = {}
    for job in protein_jobs + dna_jobs:
        by_shard.setdefault(job.shard, []).append(job)
    return [job for jobs in by_shard.values() for job in jobs]


def run_embeddings(cfg: RunConfig, jobs: list[EmbedJob]) -> Iterator[tuple[EmbedJob, dict[str, Any]]]:
    """Run ``jobs`` over ``cfg.devices`` (each worker pulls the next job when free); yield them as they finish."""
    if not jobs:
        return
    from virnucpro.workqueue import run_on_devices

    log.info("embedding %d job(s) on %s", len(jobs), ", ".join(cfg.devices))
    options = EngineOptions(cfg.precision, cfg.workers, cfg.progress and len(cfg.devices) == 1, cfg.compile)
    try:
        for done, (item, result) in enumerate(run_on_devices(cfg.devices, [(job, options) for job in jobs], embed_job), 1):
            job = item[0]
            log.info("embedded %s %s on %s (worker %d) in %.1f s (%d/%d)", Path(job.output).name, job.kind,
                     result["device"], result["worker"], result["seconds"], done, len(jobs))
            yield job, result
    finally:
        _LOADED.clear()


