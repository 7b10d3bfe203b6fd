"""Embedding stage shared by DNABERT-S and ESM-2: an :class:`Embedder` is a loaded encoder plus the streaming engine.

The two encoders differ only in tokenisation, architecture and which tokens are averaged; everything that decides
speed and robustness lives in :mod:`virnucpro.engine` once, and runs as a pipeline (tokenise → batch → device →
write) whose stages overlap:

* the FASTA is read in chunks of ``chunk_size`` records; ``workers`` threads tokenise, sort by length within the
  chunk, pack into batches whose PADDED size (longest × count) stays within ``tokens_per_batch``, pad and pin them,
  a bounded number of chunks ahead of the device (:mod:`virnucpro.engine.stream`);
* the device loop keeps up to ``in_flight`` batches queued on a GPU, copies results back asynchronously, halves a
  batch that runs out of memory and retries it (no sequence is ever dropped), holding later batches of that length
  to the size that ran (:class:`~virnucpro.engine.backoff.TokenBudget`); a single sequence that still does not
  fit raises :class:`SequenceTooLarge` naming it, or in :meth:`Embedder.embed_fasta` becomes an invalid row
  (:mod:`virnucpro.engine.flight`);
* means are pooled in float32 whatever the run precision; a writer thread puts each chunk back into input order and
  appends it to the HDF5 file (:mod:`virnucpro.engine.sink`, :class:`~virnucpro.h5io.MatrixWriter`).

Host memory is bounded by ``chunk_size`` × (``workers`` + a few) chunks, whatever the input size.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from virnucpro.device import peak_memory, precision_name, resolve_device, resolve_precision, use_device
from virnucpro.engine.backoff import TokenBudget
from virnucpro.engine.batching import TokenChunk, pad_tokens, plan_batches
from virnucpro.engine.flight import DeviceLoop, FaultHook, HostBatch, PreparedChunk, SequenceTooLarge, build_batch
from virnucpro.engine.sink import OrderedSink
from virnucpro.engine.stream import Prefetch, default_workers, read_chunks
from virnucpro.engine.transfer import Transfer, transfer_for
from virnucpro.errors import InputError
from virnucpro.fasta import read_fasta
from virnucpro.h5io import STORE_DTYPES, MatrixWriter
from virnucpro.models.layers import ATTENTION_MODES, LoadedEncoder
from virnucpro.progress import progress_bar
from virnucpro.shards_check import source_attrs

log = logging.getLogger("virnucpro")

#: Padded tokens per forward pass when the caller gives none. CPU: small batches keep caches warm. CUDA: DNABERT-S
#: (117M) fits far more than ESM-2 3B; ``virnucpro profile`` measures the real limit of a given GPU.
DEFAULT_TOKENS_PER_BATCH = {("dna", "cpu"): 4096, ("protein", "cpu"): 4096, ("dna", "cuda"): 65536, ("protein", "cuda"): 32768}
#: Host memory per chunk of results (rows × dim float32): the chunk size follows from it, so ESM-2 3B (2560 wide)
#: uses ~1600-sequence chunks and DNABERT-S (768) ~5500. Tokens of a chunk of 500 bp frames are far smaller.
CHUNK_RESULT_BYTES = 16 << 20
#: Bounds of the sequences per chunk (the unit of reading, tokenising, length-sorting and writing).
CHUNK_SIZE_RANGE = (256, 8192)
#: Batches queued on a CUDA device before the host waits for the oldest one's results.
DEFAULT_IN_FLIGHT = 3


class Embedder:
    """A loaded encoder on its device, ready to turn FASTA files into HDF5 embedding matrices.

    ``workers`` (tokenisation threads), ``chunk_size`` and ``in_flight`` tune the pipeline; ``host_only`` replaces
    the forward pass and pooling by a no-op returning zeros, so ``virnucpro benchmark --host-only`` measures what the
    host side of this very code can feed a device.
    """

    def __init__(
        self,
        kind: str,
        encoder: LoadedEncoder,
        device: torch.device,
        dtype: Any,
        *,
        workers: int | None = None,
        chunk_size: int | None = None,
        in_flight: int = DEFAULT_IN_FLIGHT,
        host_only: bool = False,
    ) -> None:
        self.kind = kind
        self.encoder = encoder
        self.name = encoder.name
        self.checksum = encoder.checksum
        self.dim = encoder.dim
        self.device = device
        self.dtype = dtype  # the run's precision mode (see virnucpro.device)
        self.workers = workers or default_workers()
        low, high = CHUNK_SIZE_RANGE
        self.chunk_size = chunk_size or max(low, min(high, CHUNK_RESULT_BYTES // (4 * max(1, self.dim))))
        self._zeros: torch.Tensor | None = None
        self.in_flight = in_flight
        self.host_only = host_only
        self.fault_hook: FaultHook | None = None
        #: How results come back from the device (tests may give a late-arriving one to queue batches on CPU).
        self.transfer: Transfer = transfer_for(device)
        #: OOM ceilings learnt on this device, kept across files (a worker loads a model once and embeds many shards)
        self.budget = TokenBudget()

    @property
    def attention(self) -> str:
        """The module's attention path (see :data:`~virnucpro.models.layers.ATTENTION_MODES`)."""
        return self.encoder.module.attention  # type: ignore[return-value]

    @attention.setter
    def attention(self, mode: str) -> None:
        if mode not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, not {mode!r}")
        self.encoder.module.attention = mode

    def default_tokens_per_batch(self) -> int:
        """Padded tokens per batch used when the caller gives none."""
        return DEFAULT_TOKENS_PER_BATCH[(self.kind, "cuda" if self.device.type == "cuda" else "cpu")]

    # -- device step -----------------------------------------------------------------------------------------------

    def step(self, ids: torch.Tensor, mask: torch.Tensor, padded: bool = True) -> torch.Tensor:
        """Pooled float32 means ``[n, dim]`` of a padded batch already on the device (a no-op in host-only mode).

        ``padded=False`` (no row of the batch is padded, known on the host) lets the model skip its mask and bias."""
        if self.host_only:  # one zero block, sliced: the no-op must cost nothing (rows are copied out before reuse)
            if self._zeros is None or self._zeros.shape[0] < ids.shape[0] or self._zeros.device != ids.device:
                self._zeros = torch.zeros((max(ids.shape[0], 1024), self.dim), dtype=torch.float32, device=ids.device)
            return self._zeros[: ids.shape[0]]
        return self.encoder.pool(self.encoder.module(ids, mask, padded=padded), mask)

    def _loop(self, on_too_large: Callable[[TokenChunk, np.ndarray], None] | None, stats: dict[str, Any]) -> DeviceLoop:
        return DeviceLoop(
            self.step, self.device, self.encoder.pad_id, in_flight=self.in_flight, fault_hook=self.fault_hook,
            on_too_large=on_too_large, stats=stats, describe=f"{self.name}, {precision_name(self.dtype)}",
            transfer=self.transfer, budget=self.budget,
        )

    # -- in memory (tests, profile) --------------------------------------------------------------------------------

    def host_batch(self, tokens: Sequence[np.ndarray], pad_to: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids and mask on the host, in pinned memory for CUDA so the copy to the device is asynchronous."""
        ids, mask = pad_tokens(tokens, self.encoder.pad_id, pad_to)
        if self.device.type == "cuda":
            ids, mask = ids.pin_memory(), mask.pin_memory()
        return ids, mask

    @torch.inference_mode()
    def forward_host_batch(self, ids: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
        """Mean embeddings ``[n, dim]`` (float32) of a batch made by :meth:`host_batch` (synchronous)."""
        padded = not bool(mask.all())  # the host copy: no device sync
        ids, mask = ids.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True)
        return self.step(ids, mask, padded).cpu().numpy()

    def embed_batch(self, tokens: Sequence[np.ndarray], pad_to: int | None = None) -> np.ndarray:
        """Mean embeddings ``[n, dim]`` (float32) of one padded batch; ``pad_to`` adds extra padding (tests)."""
        return self.forward_host_batch(*self.host_batch(tokens, pad_to))

    def read_and_tokenize(self, input_fa: Path) -> tuple[list[str], list[np.ndarray]]:
        """Ids and token arrays of every record of ``input_fa`` at once (small files, tests)."""
        records = list(read_fasta(Path(input_fa)))
        ids = [r.id for r in records]
        return ids, self.encoder.tokenize(ids, [r.sequence for r in records]) if records else []

    def embed_tokens(
        self,
        tokens: Sequence[np.ndarray],
        tokens_per_batch: int,
        stats: dict[str, Any] | None = None,
        ids: Sequence[str] | None = None,
        on_too_large: Callable[[np.ndarray], None] | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(row indices, means)`` for already tokenised sequences, batch by batch, through the device loop.

        ``stats`` (updated in place) counts batches, padded tokens and OOM retries; ``ids`` name sequences in errors.
        """
        stats = stats if stats is not None else {}
        names = list(ids) if ids is not None else [f"#{i}" for i in range(len(tokens))]
        chunk = TokenChunk.of(0, names, tokens)
        prepared = PreparedChunk(chunk, [HostBatch(rows) for rows in plan_batches(chunk.lengths, tokens_per_batch)])
        too_large = (lambda _chunk, rows: on_too_large(rows)) if on_too_large is not None else None
        for _chunk, rows, values in self._loop(too_large, stats).run([prepared]):
            yield rows, values

    # -- files -----------------------------------------------------------------------------------------------------

    def prepare_chunk(self, item: tuple[int, list[str], list[str]], tokens_per_batch: int) -> PreparedChunk:
        """Tokenise one chunk read from the FASTA and build its padded (pinned on CUDA) batches, longest first."""
        start, ids, sequences = item
        chunk = TokenChunk.of(start, ids, self.encoder.tokenize(ids, sequences))
        pin = self.transfer.pin
        batches = [build_batch(chunk, rows, self.encoder.pad_id, pin) for rows in plan_batches(chunk.lengths, tokens_per_batch)]
        return PreparedChunk(chunk, batches)

    def embed_fasta(
        self,
        input_fa: Path,
        output_h5: Path,
        tokens_per_batch: int | None = None,
        store_dtype: str = "float32",
        progress: bool = True,
        total: int | None = None,
        batch_scale: float = 1.0,
    ) -> dict[str, Any]:
        """Embed every record of ``input_fa`` into ``output_h5`` (rows in input order); returns run statistics.

        ``total``: the number of records when the caller knows it (a prepare shard's manifest does), so progress
        lines can show done/total and an ETA; the file is streamed, so it is not counted here.
        """
        if tokens_per_batch is not None and tokens_per_batch < 1:
            raise InputError(f"--tokens-per-batch must be positive, not {tokens_per_batch}")
        if store_dtype not in STORE_DTYPES:
            raise InputError(f"--store-dtype must be one of {sorted(STORE_DTYPES)}")
        # Parallelism comes from our own worker threads; the Rust tokenizer's internal pool would oversubscribe them.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        if not 0.0 < batch_scale <= 1.0:
            raise InputError(f"--batch-scale must be in (0, 1], not {batch_scale}")
        # a retry after running out of memory scales the budget down, whether it was given or the device default
        tpb = max(1, int((tokens_per_batch or self.default_tokens_per_batch()) * batch_scale))
        start = time.perf_counter()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        attrs = {
            "model_name": self.name,
            "model_sha256": self.checksum,
            "precision": precision_name(self.dtype),
            "dim": self.dim,
            "kind": self.kind,
            "tokens_per_batch": tpb,
            **source_attrs(input_fa),  # shard identity, checked by merge (virnucpro.shards_check)
        }
        stats: dict[str, Any] = {"batches": 0, "padded_tokens": 0, "oom_retries": 0, "too_large": 0}
        counts = {"sequences": 0, "tokens": 0}
        with MatrixWriter(output_h5, None, self.dim, attrs=attrs, store_dtype=store_dtype) as writer:
            sink = OrderedSink(writer)
            try:
                reader = read_chunks(Path(input_fa), self.chunk_size)
                with Prefetch(reader, lambda item: self.prepare_chunk(item, tpb), self.workers) as prepared, \
                        progress_bar(desc=f"embed-{self.kind}", unit="seq", total=total, enabled=progress) as bar:

                    def counted() -> Iterator[PreparedChunk]:
                        for p in prepared:
                            counts["sequences"] += len(p.chunk)
                            counts["tokens"] += len(p.chunk.flat)
                            yield p

                    done_tokens = 0
                    for chunk, rows, values in self._loop(sink.invalid, stats).run(counted()):
                        sink.put(chunk, rows, values)
                        done_tokens += int(chunk.lengths[rows].sum())
                        _advance(bar, len(rows), done_tokens, start)
                sink.finish()
            finally:
                sink.close()
            writer.commit()
        seconds = time.perf_counter() - start
        stats.update(
            sequences=counts["sequences"],
            tokens=counts["tokens"],
            seconds=round(seconds, 4),
            peak_memory_bytes=peak_memory(self.device),
            tokens_per_s=round(counts["tokens"] / seconds, 1) if seconds > 0 else 0.0,
            sequences_per_s=round(counts["sequences"] / seconds, 2) if seconds > 0 else 0.0,
            workers=self.workers,
            **({"host_only": True} if self.host_only else {}),
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


def load_embedder(
    kind: str, model: str, device: str = "auto", precision: str = "auto", attention: str = "sdpa",
    compile: bool = False, **engine: Any,
) -> Embedder:
    """Load DNABERT-S (``kind="dna"``) or ESM-2 (``kind="protein"``) from a local path or a hub/fair-esm name.

    ``compile`` asks the loader to ``torch.compile`` the layers; ``engine`` passes pipeline options (``workers``,
    ``chunk_size``, ``in_flight``) to :class:`Embedder`. ``cuda:N`` becomes the process's current device first
    (:func:`~virnucpro.device.use_device`).
    """
    dev = resolve_device(device)
    use_device(dev)
    dtype = resolve_precision(precision, dev)
    if attention not in ATTENTION_MODES:
        raise ValueError(f"attention must be one of {ATTENTION_MODES}, not {attention!r}")
    if kind == "dna":
        from virnucpro.models.dnabert import load_dnabert as load
    elif kind == "protein":
        from virnucpro.models.esm import load_esm as load
    else:
        raise ValueError(f"kind must be 'dna' or 'protein', not {kind!r}")
    encoder = load(model, device=dev, dtype=dtype, attention=attention, compile=compile)
    log.info("%s loaded on %s in %s (dim %d)", encoder.name, dev, precision_name(dtype), encoder.dim)
    return Embedder(kind, encoder, dev, dtype, **engine)


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
    workers = getattr(args, "workers", None)
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be positive, not {workers}")
    embedder = load_embedder(kind, args.model, args.device, args.precision, compile=args.compile, workers=workers)
    embedder.embed_fasta(
        args.input,
        args.output,
        tokens_per_batch=args.tokens_per_batch,
        store_dtype=args.store_dtype,
        progress=not args.quiet,
        batch_scale=args.batch_scale,
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
    "plan_batches",
]
