"""Embedding stage shared by DNABERT-S and ESM-2: device/precision choice, token batching, OOM back-off, HDF5 output.

The two encoders differ only in tokenisation, architecture and which tokens are averaged; everything that decides
speed and robustness lives here once:

* all sequences of a shard are tokenised up front, sorted by length (longest first, so the biggest batch runs first
  and an out-of-memory shows up immediately) and packed into batches whose PADDED size (longest × count) stays within
  ``tokens_per_batch``;
* a CUDA out-of-memory on a batch halves that batch and retries (no sequence is ever dropped); a single sequence that
  still does not fit raises :class:`SequenceTooLarge` naming it (``embed_fasta`` instead marks its row invalid in
  the HDF5 file, so the run goes on and the read gets a per-read status);
* means are accumulated in float32 whatever the run precision, and rows are written back by input index through
  :class:`~virnucpro.h5io.MatrixWriter`, so the file keeps FASTA order.

Model-side helpers (attention paths, state-dict checks, :class:`LoadedEncoder`) live in ``models/layers.py`` and the
device/precision choice in ``device.py``; this module only uses them.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from virnucpro.device import peak_memory, precision_name, resolve_device, resolve_precision
from virnucpro.errors import InputError, VirNucProError
from virnucpro.fasta import read_fasta
from virnucpro.h5io import STORE_DTYPES, MatrixWriter
from virnucpro.models.layers import ATTENTION_MODES, LoadedEncoder
from virnucpro.progress import progress_bar

log = logging.getLogger("virnucpro")

#: Padded tokens per forward pass when the caller gives none. CPU: small batches keep caches warm. CUDA: DNABERT-S
#: (117M) fits far more than ESM-2 3B; ``virnucpro profile`` measures the real limit of a given GPU.
DEFAULT_TOKENS_PER_BATCH = {("dna", "cpu"): 4096, ("protein", "cpu"): 4096, ("dna", "cuda"): 65536, ("protein", "cuda"): 32768}
#: Sequences tokenised per call (DNABERT's Rust tokenizer encodes a list in parallel).
_TOKENIZE_CHUNK = 8192


class SequenceTooLarge(VirNucProError):
    """One sequence alone does not fit in accelerator memory: the caller records it against ``seq_id``."""

    exit_code = 137

    def __init__(self, message: str, seq_id: str) -> None:
        super().__init__(message)
        self.seq_id = seq_id


# --------------------------------------------------------------------------------------------------------------------
# Batching


def plan_batches(lengths: np.ndarray, tokens_per_batch: int) -> list[np.ndarray]:
    """Indices grouped into batches, longest first, each batch's padded size ``max_len × n`` ≤ ``tokens_per_batch``.

    A sequence longer than ``tokens_per_batch`` gets a batch of its own rather than an error: the OOM back-off decides
    whether it fits.
    """
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        longest = int(lengths[order[start]])
        count = max(1, tokens_per_batch // max(1, longest))
        batches.append(order[start : start + count])
        start += count
    return batches


def pad_tokens(tokens: Sequence[np.ndarray], pad_id: int, pad_to: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack token arrays into ``[n, L]`` ids and a boolean mask (True = real token)."""
    width = max(len(t) for t in tokens)
    width = max(width, pad_to or 0)
    ids = np.full((len(tokens), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(tokens), width), dtype=bool)
    for i, t in enumerate(tokens):
        ids[i, : len(t)] = t
        mask[i, : len(t)] = True
    return torch.from_numpy(ids), torch.from_numpy(mask)


def pooled_mean(hidden: torch.Tensor, mask: torch.Tensor, skip: tuple[int, int]) -> torch.Tensor:
    """Mean over each row's real tokens minus ``skip`` (leading, trailing), accumulated in float32."""
    lengths = mask.sum(dim=1)
    positions = torch.arange(mask.shape[1], device=mask.device)[None, :]
    keep = (positions >= skip[0]) & (positions < (lengths - skip[1])[:, None])
    weights = keep.to(torch.float32)
    total = torch.einsum("bl,bld->bd", weights, hidden.float())
    return total / weights.sum(dim=1, keepdim=True).clamp_min(1.0)


#: Test hook: called with the row indices of each batch right before its forward pass; raising
#: ``torch.OutOfMemoryError`` there exercises the back-off on CPU. ``None`` in production.
FaultHook = Callable[[np.ndarray], None]


class Embedder:
    """A loaded encoder on its device, ready to turn FASTA files into HDF5 embedding matrices."""

    def __init__(self, kind: str, encoder: LoadedEncoder, device: torch.device, dtype: torch.dtype) -> None:
        self.kind = kind
        self.encoder = encoder
        self.name = encoder.name
        self.checksum = encoder.checksum
        self.dim = encoder.dim
        self.device = device
        self.dtype = dtype
        self.fault_hook: FaultHook | None = None

    @property
    def attention(self) -> str:
        """``sdpa`` (fused, default) or ``reference`` (explicit matmul-softmax)."""
        return self.encoder.module.attention  # type: ignore[return-value]

    @attention.setter
    def attention(self, mode: str) -> None:
        if mode not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, not {mode!r}")
        self.encoder.module.attention = mode

    def default_tokens_per_batch(self) -> int:
        """Padded tokens per batch used when the caller gives none."""
        return DEFAULT_TOKENS_PER_BATCH[(self.kind, "cuda" if self.device.type == "cuda" else "cpu")]

    # -- core ------------------------------------------------------------------------------------------------------

    def host_batch(self, tokens: Sequence[np.ndarray], pad_to: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids and mask on the host, in pinned memory for CUDA so the copy to the device is asynchronous."""
        ids, mask = pad_tokens(tokens, self.encoder.pad_id, pad_to)
        if self.device.type == "cuda":
            ids, mask = ids.pin_memory(), mask.pin_memory()
        return ids, mask

    @torch.inference_mode()
    def forward_host_batch(self, ids: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
        """Mean embeddings ``[n, dim]`` (float32) of a batch made by :meth:`host_batch`."""
        ids, mask = ids.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True)
        hidden = self.encoder.module(ids, mask)
        return pooled_mean(hidden, mask, self.encoder.pool_skip).cpu().numpy()

    def embed_batch(self, tokens: Sequence[np.ndarray], pad_to: int | None = None) -> np.ndarray:
        """Mean embeddings ``[n, dim]`` (float32) of one padded batch; ``pad_to`` adds extra padding (tests)."""
        return self.forward_host_batch(*self.host_batch(tokens, pad_to))

    def embed_tokens(
        self,
        tokens: Sequence[np.ndarray],
        tokens_per_batch: int,
        stats: dict[str, Any] | None = None,
        ids: Sequence[str] | None = None,
        on_too_large: Callable[[np.ndarray], None] | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(row indices, means)`` for every sequence, batch by batch, halving batches that run out of memory.

        ``stats`` (updated in place) counts batches, padded tokens and OOM retries; ``ids`` name sequences in errors.
        """
        stats = stats if stats is not None else {}
        lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
        pending = list(reversed(plan_batches(lengths, tokens_per_batch)))
        # Host work (padding, pinning) of the next batch runs in a background thread while the device computes
        # the current one; after an OOM split the prefetched batch no longer matches and is simply rebuilt.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="virnucpro-batch") as pool:
            prefetched: tuple[np.ndarray, Future] | None = None
            while pending:
                rows = pending.pop()
                if prefetched is not None and prefetched[0] is rows:
                    host = prefetched[1].result()
                else:
                    host = self.host_batch([tokens[i] for i in rows])
                prefetched = None
                if pending:
                    upcoming = pending[-1]
                    prefetched = (upcoming, pool.submit(self.host_batch, [tokens[i] for i in upcoming]))
                try:
                    if self.fault_hook is not None:
                        self.fault_hook(rows)
                    values = self.forward_host_batch(*host)
                except torch.OutOfMemoryError:
                    try:
                        pending.extend(self._split_after_oom(rows, lengths, stats, ids))
                    except SequenceTooLarge as exc:
                        if on_too_large is None:
                            raise
                        log.warning("%s: recorded as not embedded, the run goes on", exc)
                        on_too_large(rows)
                    continue
                stats["batches"] = stats.get("batches", 0) + 1
                stats["padded_tokens"] = stats.get("padded_tokens", 0) + int(lengths[rows].max()) * len(rows)
                yield rows, values

    def _split_after_oom(
        self, rows: np.ndarray, lengths: np.ndarray, stats: dict[str, Any], ids: Sequence[str] | None
    ) -> list[np.ndarray]:
        """Free cached memory and return the two halves of ``rows`` (to run next), or give up on a lone sequence."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if len(rows) == 1:
            seq_id = ids[rows[0]] if ids is not None else f"#{int(rows[0])}"
            raise SequenceTooLarge(
                f"{seq_id}: a single sequence of {int(lengths[rows[0]])} tokens does not fit in {self.device} memory"
                f" ({self.name}, {precision_name(self.dtype)})",
                seq_id,
            )
        stats["oom_retries"] = stats.get("oom_retries", 0) + 1
        half = len(rows) // 2
        log.warning(
            "out of memory on a batch of %d sequences (%d padded tokens); retrying as %d + %d",
            len(rows), int(lengths[rows].max()) * len(rows), half, len(rows) - half,
        )
        return [rows[half:], rows[:half]]  # popped from the end: first half runs first

    # -- files -----------------------------------------------------------------------------------------------------

    def read_and_tokenize(self, input_fa: Path) -> tuple[list[str], list[np.ndarray]]:
        """Ids and token arrays of every record of ``input_fa`` (a shard fits in memory; the FASTA is streamed)."""
        ids: list[str] = []
        tokens: list[np.ndarray] = []
        chunk_ids: list[str] = []
        chunk_seqs: list[str] = []
        for record in read_fasta(input_fa):
            chunk_ids.append(record.id)
            chunk_seqs.append(record.sequence)
            if len(chunk_seqs) >= _TOKENIZE_CHUNK:
                tokens.extend(self.encoder.tokenize(chunk_ids, chunk_seqs))
                ids.extend(chunk_ids)
                chunk_ids, chunk_seqs = [], []
        if chunk_seqs:
            tokens.extend(self.encoder.tokenize(chunk_ids, chunk_seqs))
            ids.extend(chunk_ids)
        return ids, tokens

    def embed_fasta(
        self,
        input_fa: Path,
        output_h5: Path,
        tokens_per_batch: int | None = None,
        store_dtype: str = "float32",
        progress: bool = True,
    ) -> dict[str, Any]:
        """Embed every record of ``input_fa`` into ``output_h5`` (rows in input order); returns run statistics."""
        if tokens_per_batch is not None and tokens_per_batch < 1:
            raise InputError(f"--tokens-per-batch must be positive, not {tokens_per_batch}")
        if store_dtype not in STORE_DTYPES:
            raise InputError(f"--store-dtype must be one of {sorted(STORE_DTYPES)}")
        tpb = tokens_per_batch or self.default_tokens_per_batch()
        start = time.perf_counter()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        ids, tokens = self.read_and_tokenize(Path(input_fa))
        attrs = {
            "model_name": self.name,
            "model_sha256": self.checksum,
            "precision": precision_name(self.dtype),
            "dim": self.dim,
            "kind": self.kind,
            "tokens_per_batch": tpb,
        }
        stats: dict[str, Any] = {"batches": 0, "padded_tokens": 0, "oom_retries": 0, "too_large": 0}
        total_tokens = int(sum(len(t) for t in tokens))
        with MatrixWriter(output_h5, ids, self.dim, attrs=attrs, store_dtype=store_dtype) as writer:
            with progress_bar(desc=f"embed-{self.kind}", unit="seq", total=len(ids), enabled=progress) as bar:
                done_tokens = 0
                def too_large(rows: np.ndarray) -> None:
                    writer.mark_invalid(rows)
                    stats["too_large"] = stats.get("too_large", 0) + len(rows)

                for rows, values in self.embed_tokens(tokens, tpb, stats, ids, on_too_large=too_large):
                    writer.write_rows(rows, values)
                    done_tokens += int(sum(len(tokens[i]) for i in rows))
                    _advance(bar, len(rows), done_tokens, start)
            writer.commit()
        seconds = time.perf_counter() - start
        stats.update(
            sequences=len(ids),
            tokens=total_tokens,
            seconds=round(seconds, 4),
            peak_memory_bytes=peak_memory(self.device),
            tokens_per_s=round(total_tokens / seconds, 1) if seconds > 0 else 0.0,
            sequences_per_s=round(len(ids) / seconds, 2) if seconds > 0 else 0.0,
        )
        log.info("%s", json.dumps({"stage": f"embed-{self.kind}", "output": str(output_h5), **stats}, sort_keys=True))
        return stats


def _advance(bar: Any, n: int, done_tokens: int, start: float) -> None:
    if bar.disable:
        return
    bar.update(n)
    elapsed = max(1e-9, time.perf_counter() - start)
    bar.set_postfix_str(f"{done_tokens / elapsed:,.0f} tok/s", refresh=False)


# --------------------------------------------------------------------------------------------------------------------
# Public entry points


def load_embedder(kind: str, model: str, device: str = "auto", precision: str = "auto", attention: str = "sdpa") -> Embedder:
    """Load DNABERT-S (``kind="dna"``) or ESM-2 (``kind="protein"``) from a local path or a hub/fair-esm name."""
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    if attention not in ATTENTION_MODES:
        raise ValueError(f"attention must be one of {ATTENTION_MODES}, not {attention!r}")
    if kind == "dna":
        from virnucpro.models.dnabert import load_dnabert as load
    elif kind == "protein":
        from virnucpro.models.esm import load_esm as load
    else:
        raise ValueError(f"kind must be 'dna' or 'protein', not {kind!r}")
    encoder = load(model, device=dev, dtype=dtype, attention=attention)
    log.info("%s loaded on %s in %s (dim %d)", encoder.name, dev, precision_name(dtype), encoder.dim)
    return Embedder(kind, encoder, dev, dtype)


def describe_model(kind: str, model: str, device: str = "auto", precision: str = "auto") -> dict[str, Any]:
    """Identity of a model run without loading it: the attributes an embedding file records (resume checks).

    Resolving a hub id or fair-esm name may download the files, as loading would.
    """
    dtype = resolve_precision(precision, resolve_device(device))
    if kind == "dna":
        from virnucpro.models.dnabert import model_checksum
    elif kind == "protein":
        from virnucpro.models.esm import model_checksum
    else:
        raise ValueError(f"kind must be 'dna' or 'protein', not {kind!r}")
    return {"model_name": model, "model_sha256": model_checksum(model), "precision": precision_name(dtype), "kind": kind}


def _cli_embed(kind: str, args: argparse.Namespace) -> int:
    embedder = load_embedder(kind, args.model, args.device, args.precision)
    embedder.embed_fasta(
        args.input,
        args.output,
        tokens_per_batch=args.tokens_per_batch,
        store_dtype=args.store_dtype,
        progress=not args.quiet,
    )
    return 0


def cli_embed_dna(args: argparse.Namespace) -> int:
    """``virnucpro embed-dna``: DNABERT-S means of nucleotide frames → HDF5."""
    return _cli_embed("dna", args)


def cli_embed_protein(args: argparse.Namespace) -> int:
    """``virnucpro embed-protein``: ESM-2 last-layer means of protein frames → HDF5."""
    return _cli_embed("protein", args)


__all__ = [
    "Embedder",
    "SequenceTooLarge",
    "cli_embed_dna",
    "cli_embed_protein",
    "describe_model",
    "load_embedder",
]
