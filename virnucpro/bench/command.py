"""``virnucpro benchmark``: every selected stage over every input, one JSON report whose stage times add up.

Stages run one after the other in this process: inputs (synthetic reads and the production prepare), the MFU
denominator, then per model and ``--workers`` value either the host ceiling (``--host-only``,
:mod:`virnucpro.bench.host`) or the model's speed (:mod:`virnucpro.bench.model_speed`). The report's
``stage_seconds`` times each of these phases and they add up to its ``seconds``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from virnucpro import __version__
from virnucpro.bench.flops import resolve_peak
from virnucpro.bench.host import host_only_embedder, host_stage
from virnucpro.bench.inputs import Dataset, run_prepare
from virnucpro.bench.model_speed import embed_stage
from virnucpro.bench.random_models import get_embedder
from virnucpro.bench.report import StageClock, emit_report, hardware, logged, peak_rss_bytes
from virnucpro.bench.synthetic import chunk_for_read_length, write_synthetic_fasta
from virnucpro.device import resolve_device, resolve_precision
from virnucpro.errors import InputError
from virnucpro.fasta import read_fasta


def benchmark(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """All selected stages over every input; returns the report (``runs`` in stage order)."""
    clock = StageClock()
    device = resolve_device(args.device)
    dtype = resolve_precision(args.precision, device)
    host_only = bool(getattr(args, "host_only", False))
    workers_list = list(getattr(args, "workers", None) or [None])
    if any(w is not None and w < 1 for w in workers_list):
        raise InputError(f"--workers must be positive, not {workers_list}")
    # Parallelism comes from the engine's worker threads (one per --workers), not the tokenizer's own pool.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with clock.phase("inputs"):
        datasets = _datasets(args, workdir)
    runs: list[dict[str, Any]] = []
    if "prepare" in args.stages:
        runs.extend(logged(d.prepare) for d in datasets)
    embed_kinds = [k for k in ("dna", "protein") if k in args.stages]
    peak, peak_source = 0.0, None
    if embed_kinds and not host_only:
        with clock.phase("peak"):
            peak, peak_source = resolve_peak(device, dtype, args.peak_tflops)
    for kind, spec, tpb in (("dna", args.dnabert, args.tokens_per_batch_dna), ("protein", args.esm, args.tokens_per_batch_protein)):
        if kind not in embed_kinds:
            continue
        with clock.phase(kind):  # building the models (and a random DNABERT's tokenizer) included
            corpus = [s for d in datasets for s in d.sequences("dna", limit=2000)] if kind == "dna" else ()
            for workers in workers_list:
                if host_only:
                    embedder = host_only_embedder(kind, spec, device, dtype, corpus, workers)
                    runs.extend(logged(host_stage(embedder, d, tpb, workdir)) for d in datasets)
                else:
                    embedder = get_embedder(kind, spec, device, dtype, dna_sequences=corpus, **({"workers": workers} if workers else {}))
                    runs.extend(logged(embed_stage(embedder, d, tpb, peak, workdir)) for d in datasets)
                del embedder
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return {
        "tool_version": __version__,
        "hardware": hardware(device),
        "command": list(getattr(args, "argv", None) or sys.argv),
        "host_only": host_only,
        "peak_tflops_source": peak_source,
        "peak_rss_bytes": peak_rss_bytes(),
        **clock.report(),
        "runs": runs,
    }


def _datasets(args: argparse.Namespace, workdir: Path) -> list[Dataset]:
    """Prepare every FASTA given, or synthetic reads of each read length (chunk chosen by read length)."""
    if args.input:
        out = []
        for path in args.input:
            lengths = [len(r.sequence) for r in read_fasta(path)]
            chunk = chunk_for_read_length(int(np.median(lengths)) if lengths else 500)
            out.append(run_prepare(Path(path).name, [Path(path)], chunk, workdir))
        return out
    out = []
    for length in args.read_lengths:
        fasta = write_synthetic_fasta(workdir / f"synthetic_{length}.fa", args.reads, length)
        out.append(run_prepare(f"synthetic-{length}bp", [fasta], chunk_for_read_length(length), workdir))
    return out


def cli_benchmark(args: argparse.Namespace) -> int:
    """``virnucpro benchmark``: JSON report of prepare / DNABERT-S / ESM-2 throughput (or host ceilings)."""
    with tempfile.TemporaryDirectory(prefix="virnucpro-bench-") as tmp:
        report = benchmark(args, Path(tmp))
    emit_report(report, args.output)
    return 0
