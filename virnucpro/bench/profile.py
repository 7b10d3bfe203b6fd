"""``virnucpro profile``: the throughput curve over the padded-token budget per forward pass, and the budget to use.

The pipeline's PROFILE process reads ``dna.tokens_per_batch`` / ``protein.tokens_per_batch`` from this report.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
import torch

from virnucpro import __version__
from virnucpro.bench.flops import sync
from virnucpro.bench.random_models import get_embedder
from virnucpro.bench.report import emit_report, hardware
from virnucpro.device import peak_memory, precision_name, resolve_device, resolve_precision
from virnucpro.embed import Embedder, plan_batches

#: Realistic token lengths for the profile curve: a 500 bp frame is ~100 DNABERT-S BPE tokens and ~166 aa + 2.
_PROFILE_LENGTHS = {"dna": 100, "protein": 162}
_CPU_PROFILE_CAP = 8192


def profile_tokens(kind: str, embedder: Embedder, n_tokens: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Token arrays of realistic length (±10 %) totalling about ``n_tokens``: content does not change speed."""
    mean = _PROFILE_LENGTHS[kind]
    lengths = np.clip(rng.normal(mean, mean * 0.1, size=max(1, n_tokens // mean + 1)), 8, None).astype(int)
    if kind == "protein":
        from virnucpro.models.esm import CLS, EOS

        return [np.concatenate(([CLS], rng.integers(4, 24, n - 2), [EOS])).astype(np.int32) for n in lengths]
    vocab = embedder.encoder.module.config.vocab_size
    return [np.concatenate(([1], rng.integers(5, vocab, n - 2), [2])).astype(np.int32) for n in lengths]


def curve_point(embedder: Embedder, kind: str, tpb: int, repeats: int = 3) -> dict[str, Any]:
    """Throughput of ``repeats`` full batches of ``tpb`` padded tokens after one warm-up; OOM propagates."""
    tokens = profile_tokens(kind, embedder, tpb, np.random.default_rng(tpb))
    lengths = np.array([len(t) for t in tokens])
    batch = [tokens[i] for i in plan_batches(lengths, tpb)[0]]
    if embedder.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(embedder.device)
    embedder.embed_batch(batch)
    sync(embedder.device)
    start = time.perf_counter()
    for _ in range(repeats):
        embedder.embed_batch(batch)
    sync(embedder.device)
    seconds = time.perf_counter() - start
    real = sum(len(t) for t in batch) * repeats
    return {"tokens_per_batch": tpb, "sequences_per_batch": len(batch), "tokens_per_s": round(real / seconds, 1),
            "peak_memory_bytes": peak_memory(embedder.device)}


def profile_model(embedder: Embedder, kind: str, max_tokens: int) -> dict[str, Any]:
    """Double the batch from 1024 tokens until OOM or the cap; choose what the pipeline should use.

    CUDA: the largest batch whose peak memory left ≥10 % of the GPU free (real shards vary in length). CPU: no OOM to
    find, so the best throughput within a small cap (bigger batches only thrash caches there).
    """
    cuda = embedder.device.type == "cuda"
    cap = max_tokens if cuda else min(max_tokens, _CPU_PROFILE_CAP)
    curve: list[dict[str, Any]] = []
    oom_at = None
    tpb = 1024
    while tpb <= cap:
        try:
            curve.append(curve_point(embedder, kind, tpb))
        except torch.OutOfMemoryError:
            oom_at = tpb
            torch.cuda.empty_cache()
            break
        print(f"profile {kind}: {tpb} tokens/batch → {curve[-1]['tokens_per_s']:,.0f} tokens/s", file=sys.stderr, flush=True)
        tpb *= 2
    return {"tokens_per_batch": choose_tokens_per_batch(curve, cuda, embedder.device), "oom_at": oom_at,
            "model": embedder.name, "precision": precision_name(embedder.dtype), "curve": curve}


def choose_tokens_per_batch(curve: list[dict[str, Any]], cuda: bool, device: torch.device) -> int:
    """The pipeline's batch size from a measured curve (see :func:`profile_model`); 1024 if nothing fit."""
    if not curve:
        return 1024
    if not cuda:
        return int(max(curve, key=lambda p: p["tokens_per_s"])["tokens_per_batch"])
    budget = 0.9 * torch.cuda.get_device_properties(device).total_memory
    fitting = [p for p in curve if p["peak_memory_bytes"] <= budget] or curve[:1]
    return int(fitting[-1]["tokens_per_batch"])


def cli_profile(args: argparse.Namespace) -> int:
    """``virnucpro profile``: per-model tokens_per_batch (read by the pipeline's PROFILE process) and the curve."""
    device = resolve_device(args.device)
    dtype = resolve_precision(args.precision, device)
    report: dict[str, Any] = {"tool_version": __version__, "device": str(device), "hardware": hardware(device),
                              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    for kind, spec in (("dna", args.dnabert), ("protein", args.esm)):
        embedder = get_embedder(kind, spec, device, dtype)
        report[kind] = profile_model(embedder, kind, args.max_tokens)
        del embedder
        if device.type == "cuda":
            torch.cuda.empty_cache()
    emit_report(report, args.output)
    return 0

