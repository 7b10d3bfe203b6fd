"""The embedded runner: every stage in one process on one machine, resumable after a kill.

Layout of ``--outdir``::

    prediction_results.txt, prediction_results_highestscore.csv, reads.tsv   final tables
    manifest.json, run.log                                                   what ran, with checksums
    manifest.json.stamp.json        confirms the final tables: what made them (a run removes tables it would not make)
    work/prepare/        shards, reads.tsv and manifest of the prepare stage
    work/shards/         per shard: {shard}.dna.h5, .protein.h5, .features.h5, .frames.tsv (+ .stamp.json each)

Each shard output gets a stamp (a fingerprint of its inputs: shard file checksum, model checksum, precision,
parameters) written after the output was renamed into place. A re-run reuses an output only when the file is complete
and its stamp matches; anything else is recomputed, with a log line saying why. An exclusive lock on the folder keeps
two runs from writing into it at once.

Embedding is one work queue over all local devices (:mod:`virnucpro.workqueue`): a worker per GPU loads each model
once and pulls the next (shard, model) job when it is free, DNABERT-S and ESM-2 jobs mixed so no device waits for a
stage to end; a shard's merge and prediction run here as soon as both of its embeddings are confirmed.

Before anything is written, :func:`validate_run` checks what would otherwise fail hours later: every input can be
opened, the option values, that ``--outdir`` can be a folder, and all three models (paths, formats, and that the
classifier's input width is DNABERT-S + ESM-2). ``run.log`` records the command line, version, start and end and the
duration of every stage; ``manifest.json`` the same with library versions.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import platform
import shlex
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from virnucpro import __version__
from virnucpro.atomic import atomic_text, check_output_folder, make_output_folder, remove_stale_temps
from virnucpro.checksum import file_sha256
from virnucpro.errors import InputError
from virnucpro.fasta import STDIN, check_input, display_name
from virnucpro.h5io import h5_is_complete
from virnucpro.lock import folder_lock
from virnucpro.predict import merge_features, predict_frames
from virnucpro.shards_check import tables_by_shard
from virnucpro.prepare import MAX_SHARDS, default_workers, prepare, prepare_parameters
from virnucpro.models.classifier import check_classifier
from virnucpro.summarize import OUTPUT_FILES, sample_name, summarize

log = logging.getLogger("virnucpro.run")

SHARD_PREFIX = "shard"
#: Shard size when neither --shards nor --tokens-per-shard is given: ~47K frames of 500 bp (168 ESM-2 tokens each),
#: about 1.5 min of ESM-2 3B on an H100 at 85K tokens/s. Small enough to share out over GPUs and to resume cheaply,
#: big enough that per-shard overheads (model warm-up, file open/commit) do not matter.
DEFAULT_TOKENS_PER_SHARD = 8_000_000


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
    allow_chunk_mismatch: bool = False  # use a published classifier with the other chunk length anyway
    workers: int | None = None  # tokenisation threads per embedding worker (None: one per core, at most 8)
    compile: bool = False  # torch.compile the encoder layers (same results within float tolerance; not in stamps)
    devices: list[str] = field(default_factory=list)  # filled by plan_devices()
    command_line: list[str] = field(default_factory=list)  # as typed, for run.log and manifest.json

    def __post_init__(self) -> None:
        # Many shards by default: per-shard memory stays bounded whatever the input size, and a work queue over
        # several GPUs has something to share out. Shards are cut by ESM-2 tokens (see prepare).
        if self.n_shards is None and self.tokens_per_shard is None:
            self.tokens_per_shard = DEFAULT_TOKENS_PER_SHARD


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


def _embed_job(index: int, device: str, item: tuple[EmbedJob, EngineOptions]) -> dict[str, Any]:
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


def _shard_stem(shard: dict) -> str:
    """``shard_0001`` for the manifest entry of ``shard_0001.nuc.fa``: the name every per-shard output starts with."""
    return Path(shard["nuc"]).name.split(".")[0]


def _plan_embeddings(cfg: RunConfig, kind: str, model: str, tokens: int | None, shards: list[dict], prep_dir: Path, work: Path) -> tuple[dict[str, Path], list[EmbedJob]]:
    """Shard name → output path for ``kind``, and the jobs for the outputs that are not already current."""
    source_key = "nuc" if kind == "dna" else "prot"
    from virnucpro.embed import describe_model

    ident = describe_model(kind, model, device=cfg.devices[0], precision=cfg.precision)
    outputs: dict[str, Path] = {}
    todo: list[EmbedJob] = []
    for shard in shards:
        src = prep_dir / shard[source_key]
        out = work / f"{_shard_stem(shard)}.{'dna' if kind == 'dna' else 'protein'}.h5"
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
        for done, (item, result) in enumerate(run_on_devices(cfg.devices, [(job, options) for job in jobs], _embed_job), 1):
            job = item[0]
            log.info("embedded %s %s on %s (worker %d) in %.1f s (%d/%d)", Path(job.output).name, job.kind,
                     result["device"], result["worker"], result["seconds"], done, len(jobs))
            yield job, result
    finally:
        _LOADED.clear()


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
    _stamp_path(outdir / FINAL_STAMP_OF).unlink(missing_ok=True)
    for name in present:
        (outdir / name).unlink(missing_ok=True)
    log.warning("removed the final tables of an earlier run in %s before starting (not made by this command's inputs, "
                "options and models): %s", outdir, ", ".join(present))


def _cheap_stage(output: Path, fingerprint: dict[str, Any], what: str, make: Callable[[], object]) -> None:
    if not is_current(output, fingerprint, what):
        make()
        write_stamp(output, fingerprint)


@dataclass(frozen=True)
class RunChecks:
    """What :func:`validate_run` learnt about the models (recorded in run.log and the manifest)."""

    dnabert_dim: int
    esm_dim: int
    classifier_input_dim: int
    published_classifier: str | None
    warnings: tuple[str, ...] = ()  # logged while checking; the report and summary.json show them too


def validate_run(cfg: RunConfig) -> RunChecks:
    """Everything that can be checked before work starts, cheapest first; raises the error a later stage would.

    Inputs (:class:`InputError`, exit 2, the reader's own words), option values including ``--device`` and
    ``--precision`` (exit 2; a 16-bit mode on CPU is tried on this CPU's kernels), the output folder
    (:class:`~virnucpro.errors.StorageError`, exit 5), then the models (:class:`~virnucpro.errors.ModelError`, exit 3).
    Writes nothing.
    """
    for path in cfg.inputs:
        check_input(path)
        if _is_stream(path):
            raise InputError(
                f"{display_name(path)}: run reads its inputs more than once (prepare, the final tables, the resume check), "
                "which a stream cannot give; save it to a file first, or give a .gz file as it is "
                "(streams work with 'virnucpro prepare')"
            )
    for option, value in (
        ("--shards", cfg.n_shards), ("--tokens-per-shard", cfg.tokens_per_shard),
        ("--tokens-per-batch-dna", cfg.tokens_per_batch_dna), ("--tokens-per-batch-protein", cfg.tokens_per_batch_protein),
        ("--workers", cfg.workers),
    ):
        if value is not None and value < 1:
            raise InputError(f"{option} must be a positive number, got {value}")
    if cfg.n_shards is not None and cfg.n_shards > MAX_SHARDS:
        raise InputError(f"--shards must be between 1 and {MAX_SHARDS}, got {cfg.n_shards}")
    from virnucpro.device import resolve_device, resolve_precision

    for device in plan_devices(cfg.device):  # a typo or a missing GPU fails here, not after run.log exists
        resolve_precision(cfg.precision, resolve_device(device))
    check_output_folder(cfg.outdir)
    from virnucpro.models.check import check_models

    models = check_models(cfg.dnabert, cfg.esm, cfg.classifier)
    published = check_classifier(cfg.classifier, cfg.chunk_length, cfg.allow_chunk_mismatch)
    log.info(
        "models checked: DNABERT-S %s (dim %d), ESM-2 %s (dim %d), classifier %s (%d inputs, 2 outputs)",
        models.dnabert_folder, models.dnabert_dim, models.esm_checkpoint, models.esm_dim, cfg.classifier,
        models.classifier_input_dim,
    )
    return RunChecks(models.dnabert_dim, models.esm_dim, models.classifier_input_dim, published)


def _is_stream(path: Path | str) -> bool:
    """``-`` or anything that is not a regular file (a pipe such as ``<(zcat x.gz)``, ``/dev/stdin``)."""
    if str(path) == STDIN:
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False  # check_input has already said what is wrong with it


class _Held(logging.Handler):
    """Keeps the log records of the checks made before run.log exists, to replay them into it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _human_only(record: logging.LogRecord) -> bool:
    """run.log is for people: an embedder's machine-readable stats line (a JSON object, kept in the output of the
    ``embed-dna``/``embed-protein`` commands for scripts) stays out of it; run.log has its own line per embedding job
    ("embedded ... on DEVICE in N s")."""
    return not record.getMessage().startswith("{")


class StageClock:
    """Wall-clock duration of each stage, logged as it ends and kept for the manifest."""

    def __init__(self) -> None:
        self.durations: dict[str, float] = {}

    def record(self, stage: str, seconds: float) -> None:
        """Add time measured elsewhere (embedding jobs overlap: their summed device time per model)."""
        self.durations[stage] = round(self.durations.get(stage, 0.0) + seconds, 3)
        log.info("stage %s: %.2f s", stage, seconds)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            self.durations[stage] = round(self.durations.get(stage, 0.0) + seconds, 3)
            log.info("stage %s: %.2f s", stage, seconds)


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries that shape the numbers (recorded in manifest.json)."""
    import h5py
    import numpy
    import safetensors
    import tokenizers
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "numpy": numpy.__version__,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
    }


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def run_pipeline(cfg: RunConfig) -> dict[str, Any]:
    """Run (or resume) all stages into ``cfg.outdir``; returns the run manifest.

    Nothing is created before :func:`validate_run` passed; its log lines are then replayed into run.log.
    """
    outdir = Path(cfg.outdir)
    started = time.time()
    clock = StageClock()
    root = logging.getLogger("virnucpro")
    held = _Held()
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
        handler.addFilter(_human_only)
        root.addHandler(handler)
        try:
            command = shlex.join(cfg.command_line) if cfg.command_line else "(library call)"
            log.info("virnucpro %s started %s: %s", __version__, _utc(started), command)
            for record in held.records:
                handler.handle(record)
            try:
                manifest = _run_locked(cfg, outdir, checks, clock, started)
            except BaseException as exc:
                log.info("run failed after %.1f s (%s: %s)", time.time() - started, type(exc).__name__, exc)
                raise
            log.info("virnucpro finished %s after %.1f s", _utc(time.time()), time.time() - started)
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
    dna, dna_jobs = _plan_embeddings(cfg, "dna", cfg.dnabert, cfg.tokens_per_batch_dna, shards, prep_dir, work)
    prot, prot_jobs = _plan_embeddings(cfg, "protein", cfg.esm, cfg.tokens_per_batch_protein, shards, prep_dir, work)
    classifier_sha = file_sha256(cfg.classifier)
    tables = [work / f"{_shard_stem(shard)}.frames.tsv" for shard in shards]
    cheap_seconds = 0.0

    def merge_and_predict(key: str) -> None:
        """The cheap per-shard stages, run as soon as both embeddings of the shard are confirmed."""
        nonlocal cheap_seconds
        start = time.perf_counter()
        stem = _shard_stem(next(s for s in shards if s["nuc"] == key))
        features, frames = work / f"{stem}.features.h5", work / f"{stem}.frames.tsv"
        fp_merge = {"dna": json.loads(_stamp_path(dna[key]).read_text()), "protein": json.loads(_stamp_path(prot[key]).read_text())}
        _cheap_stage(features, fp_merge, "features", lambda: merge_features(dna[key], prot[key], features))
        fp_predict = {"features": fp_merge, "classifier_sha256": classifier_sha}
        _cheap_stage(frames, fp_predict, "predictions", lambda: predict_frames(features, cfg.classifier, frames))
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
        "started": _utc(started),
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
            "dnabert": json.loads(_stamp_path(next(iter(dna.values()))).read_text()) if dna else None,
            "esm": json.loads(_stamp_path(next(iter(prot.values()))).read_text()) if prot else None,
            "classifier": {"path": str(cfg.classifier), "sha256": classifier_sha, "published": published},
        },
        "counts": counts,
        "outputs": {name: file_sha256(outdir / name) for name in OUTPUT_FILES},
    }
    for model in ("dnabert", "esm"):
        if run_manifest["models"][model]:
            run_manifest["models"][model].pop("input_sha256", None)
    run_manifest["finished"] = _utc(time.time())
    with atomic_text(outdir / "manifest.json") as out:
        json.dump(run_manifest, out, indent=2)
        out.write("\n")
    write_stamp(outdir / FINAL_STAMP_OF, _final_fingerprint(cfg, [i["sha256"] for i in manifest["inputs"]]))
    log.info("%s", final_line(counts, outdir))
    return run_manifest


def final_line(counts: dict[str, int], outdir: Path) -> str:
    """The last line of a run: how many reads were called virus / others / NA, as virus_summary.tsv counts them."""
    reads = counts.get("reads", 0)

    def part(key: str, label: str, note: str = "") -> str:
        n = counts.get(key, 0)
        share = f"{100.0 * n / reads:.1f}%" if reads else ""
        inside = "; ".join(x for x in (share, note) if x)
        return f"{n} {label}" + (f" ({inside})" if inside else "")

    return (
        f"done: {reads} read{'' if reads == 1 else 's'}: {part('reads_virus', 'virus')}, {part('reads_others', 'others')}, "
        f"{part('reads_na', 'NA', 'nothing or too little scored')}{_warned(counts)} → {outdir}"
    )


def _warned(counts: dict[str, Any]) -> str:
    n = len(counts.get("warnings", ()))
    return f"; {n} warning{'' if n == 1 else 's'} (report.html)" if n else ""


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
