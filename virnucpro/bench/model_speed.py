"""A model's embedding speed: forward-only and end to end, with MFU, and how busy the device was in the real run.

Forward-only (the device loop over pre-tokenised sequences) is what the model and device achieve; end to end (the
production FASTA → HDF5 path) is what a run gets. The two are separate passes, so the warmer second pass could
report less time than the first (a report once said ``e2e_seconds < forward_seconds``). What says whether the host
keeps up is therefore measured INSIDE the end-to-end run: :class:`DeviceClock` times every forward pass of it
(CUDA events read after the run, no host sync in between), so ``forward_in_e2e_seconds <= e2e_seconds`` and
``device_busy`` = their ratio (≥ 0.95 means the host is not the bottleneck). The stage's phases are timed by a
:class:`~virnucpro.bench.report.StageClock` and add up to its ``seconds``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from virnucpro.bench.flops import flops_per_token, mfu, model_shape, sync
from virnucpro.bench.inputs import Dataset, embed_fasta_files
from virnucpro.bench.report import StageClock, peak_rss_bytes
from virnucpro.device import peak_memory, precision_name
from virnucpro.embed import Embedder, plan_batches


class DeviceClock:
    """Seconds the device spent in the embedder's forward passes while the ``with`` block ran.

    Wraps :meth:`Embedder.step` on the instance (the device loop takes it when a run starts). On CUDA each pass is
    bracketed by two timing events on the current stream and the intervals are summed after a final synchronize,
    so the timing adds no host sync to the loop; on a CPU every pass is synchronous and the wall clock is exact.
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.seconds = 0.0
        self.passes = 0
        self._events: list[tuple[Any, Any]] = []

    def __enter__(self) -> "DeviceClock":
        step, cuda = self.embedder.step, self.embedder.device.type == "cuda"

        def timed(ids: torch.Tensor, mask: torch.Tensor, padded: bool = True) -> torch.Tensor:
            self.passes += 1
            if cuda:
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                begin.record()
                out = step(ids, mask, padded)
                end.record()
                self._events.append((begin, end))
                return out
            start = time.perf_counter()
            out = step(ids, mask, padded)
            self.seconds += time.perf_counter() - start
            return out

        self.embedder.step = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        del self.embedder.step  # the class's method again
        if self._events:
            sync(self.embedder.device)
            self.seconds += sum(begin.elapsed_time(end) for begin, end in self._events) / 1000.0
            self._events.clear()


def embed_stage(
    embedder: Embedder, data: Dataset, tokens_per_batch: int | None, peak_tflops: float, workdir: Path
) -> dict[str, Any]:
    """Forward-only and end-to-end throughput of ``embedder`` on ``data``; MFU for both; phases that add up."""
    clock = StageClock()
    stage = {"stage": embedder.kind, "mode": "model", "input": data.name, "chunk_length": data.chunk_length,
             "model": embedder.name, "workers": embedder.workers}
    with clock.phase("read_frames"):
        sequences = data.sequences(embedder.kind)
    if not sequences:
        return {**stage, "sequences": 0, "note": "no frames to embed", **clock.report()}
    tpb = tokens_per_batch or embedder.default_tokens_per_batch()
    with clock.phase("tokenize"):
        tokens = embedder.encoder.tokenize([f"s{i}" for i in range(len(sequences))], sequences)
        del sequences
        lengths = np.array([len(t) for t in tokens], dtype=np.int64)
    with clock.phase("warmup"):  # kernels, allocator, caches
        embedder.embed_batch([tokens[i] for i in plan_batches(lengths, tpb)[0]])
        sync(embedder.device)
        if embedder.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(embedder.device)
    stats: dict[str, Any] = {}
    with clock.phase("forward"):
        start = time.perf_counter()
        for _ in embedder.embed_tokens(tokens, tpb, stats):
            pass
        sync(embedder.device)
        seconds = time.perf_counter() - start
        del tokens
    forward = throughput(embedder, lengths, stats, seconds, tpb, peak_tflops)
    with clock.phase("end_to_end"), DeviceClock(embedder) as device:
        e2e = embed_fasta_files(embedder, data.files(embedder.kind), workdir, tpb)
    e2e_tokens_per_s = e2e["tokens"] / e2e["seconds"] if e2e["seconds"] > 0 else 0.0
    e2e_mfu, e2e_clamped = mfu(forward["flops_per_token"] * e2e_tokens_per_s / 1e12, peak_tflops)
    return {
        **stage,
        **forward,
        "e2e_seconds": round(e2e["seconds"], 4),
        "e2e_seq_per_s": round(e2e["sequences"] / e2e["seconds"], 2) if e2e["seconds"] > 0 else 0.0,
        "e2e_tokens_per_s": round(e2e_tokens_per_s, 1),
        "e2e_mfu": round(e2e_mfu, 6) if e2e_mfu is not None else None,
        **({"e2e_mfu_clamped": True} if e2e_clamped else {}),
        "forward_in_e2e_seconds": round(device.seconds, 4),
        "device_busy": round(device.seconds / e2e["seconds"], 4) if e2e["seconds"] > 0 else None,
        "peak_rss_bytes": peak_rss_bytes(),
        **clock.report(),
    }


def throughput(
    embedder: Embedder, lengths: np.ndarray, stats: dict[str, Any], seconds: float, tpb: int, peak_tflops: float
) -> dict[str, Any]:
    """Forward-only throughput, padding and model-FLOP utilisation of one timed pass (real tokens count as work)."""
    real, padded = int(lengths.sum()), int(stats.get("padded_tokens", 0))
    params, layers, dim = model_shape(embedder)
    per_token = flops_per_token(params, layers, dim, float(lengths.mean()))
    tokens_per_s = real / seconds if seconds > 0 else 0.0
    achieved = per_token * tokens_per_s / 1e12
    efficiency = real / padded if padded else 1.0
    utilisation, clamped = mfu(achieved, peak_tflops)
    return {
        "sequences": int(len(lengths)),
        "tokens": real,
        "padded_tokens": padded,
        "padding_efficiency": round(efficiency, 4),
        "padding_waste": round(1.0 - efficiency, 4),
        "mean_tokens_per_sequence": round(float(lengths.mean()), 1),
        "batches": int(stats.get("batches", 0)),
        "oom_retries": int(stats.get("oom_retries", 0)),
        "tokens_per_batch": tpb,
        "forward_seconds": round(seconds, 4),
        "forward_tokens_per_s": round(tokens_per_s, 1),
        "forward_seq_per_s": round(len(lengths) / seconds, 2) if seconds > 0 else 0.0,
        "precision": precision_name(embedder.dtype),
        "attention": embedder.attention,
        "peak_memory_bytes": peak_memory(embedder.device),
        "peak_memory_kind": "cuda_max_allocated" if embedder.device.type == "cuda" else "host_rss",
        "non_embedding_params": params,
        "flops_per_token": per_token,
        "achieved_tflops": round(achieved, 6),
        "peak_tflops": round(peak_tflops, 4),
        "mfu": round(utilisation, 6) if utilisation is not None else None,
        **({"mfu_clamped": True} if clamped else {}),
        **({"tokenizer": embedder.encoder.info["tokenizer"]} if "tokenizer" in embedder.encoder.info else {}),
    }

