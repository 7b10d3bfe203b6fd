"""The device loop: launch batches, keep several in flight, copy results back asynchronously, back off on OOM.

On CUDA each batch is launched without waiting for the previous one: inputs come from pinned host memory
(``non_blocking`` copies), the pooled means are copied into a pinned host buffer with ``non_blocking=True`` and a CUDA
event marks when that copy is done. Up to ``in_flight`` batches are queued on the device; the loop only waits for the
oldest when the queue is full, so the GPU always has the next batch while the host collects results. On CPU the
forward is synchronous and the same code simply runs one batch at a time.

Out of memory: a batch that fails to launch is halved and both halves retried (nothing is dropped); a single sequence
that still does not fit is :class:`SequenceTooLarge`, handed to ``on_too_large`` when given (the row is then marked
invalid), raised otherwise.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from virnucpro.engine.batching import TokenChunk, pad_rows
from virnucpro.errors import VirNucProError

log = logging.getLogger("virnucpro")

#: ``step(ids, mask)`` on the device → pooled float32 means ``[n, dim]`` on the device.
Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: Test hook: called with the input rows and token lengths of each batch right before its forward pass; raising
#: ``torch.OutOfMemoryError`` there exercises the back-off on CPU. ``None`` in production.
FaultHook = Callable[[np.ndarray, np.ndarray], None]


class SequenceTooLarge(VirNucProError):
    """One sequence alone does not fit in accelerator memory: the caller records it against ``seq_id``."""

    exit_code = 137

    def __init__(self, message: str, seq_id: str) -> None:
        super().__init__(message)
        self.seq_id = seq_id


@dataclass
class HostBatch:
    """Rows (chunk-local) of one batch and, once built, their padded ids and mask on the host."""

    rows: np.ndarray
    ids: torch.Tensor | None = None
    mask: torch.Tensor | None = None


@dataclass
class PreparedChunk:
    """A tokenised chunk and its batches in launch order (built by the prepare threads)."""

    chunk: TokenChunk
    batches: list[HostBatch]


def build_batch(chunk: TokenChunk, rows: np.ndarray, pad_id: int, pin: bool) -> HostBatch:
    """Pad ``rows`` of ``chunk``; pinned when the device is CUDA so the host→device copy is asynchronous."""
    ids, mask = pad_rows(chunk, rows, pad_id)
    if pin:
        ids, mask = ids.pin_memory(), mask.pin_memory()
    return HostBatch(rows, ids, mask)


@dataclass
class _Flight:
    chunk: TokenChunk
    rows: np.ndarray
    host: torch.Tensor
    event: Any  # torch.cuda.Event | None
    keep: tuple  # inputs kept alive until their asynchronous copies are done


class DeviceLoop:
    """Run prepared chunks through ``step`` on ``device``; yields ``(chunk, rows, means)`` in launch order."""

    def __init__(
        self,
        step: Step,
        device: torch.device,
        pad_id: int,
        *,
        in_flight: int = 3,
        describe: str = "",
        fault_hook: FaultHook | None = None,
        on_too_large: Callable[[TokenChunk, np.ndarray], None] | None = None,
        stats: dict[str, Any] | None = None,
    ) -> None:
        self.step, self.device, self.pad_id = step, device, pad_id
        self.cuda = device.type == "cuda"
        self.in_flight = max(1, in_flight) if self.cuda else 1
        self.describe = describe
        self.fault_hook = fault_hook
        self.on_too_large = on_too_large
        self.stats = stats if stats is not None else {}
        for key in ("batches", "padded_tokens", "oom_retries", "too_large"):
            self.stats.setdefault(key, 0)

    def run(self, chunks: Iterable[PreparedChunk]) -> Iterator[tuple[TokenChunk, np.ndarray, np.ndarray]]:
        flights: deque[_Flight] = deque()
        for prepared in chunks:
            chunk = prepared.chunk
            lengths = chunk.lengths
            pending = list(reversed(prepared.batches))
            while pending:
                batch = pending.pop()
                if batch.ids is None:
                    batch = build_batch(chunk, batch.rows, self.pad_id, self.cuda)
                try:
                    if self.fault_hook is not None:
                        self.fault_hook(chunk.start + batch.rows, lengths[batch.rows])
                    flights.append(self._launch(chunk, batch))
                except torch.OutOfMemoryError:
                    del batch.ids, batch.mask
                    try:
                        pending.extend(self._split_after_oom(chunk, batch.rows, lengths))
                    except SequenceTooLarge as exc:
                        if self.on_too_large is None:
                            raise
                        log.warning("%s: recorded as not embedded, the run goes on", exc)
                        self.stats["too_large"] += len(batch.rows)
                        self.on_too_large(chunk, batch.rows)
                    continue
                self.stats["batches"] += 1
                self.stats["padded_tokens"] += int(lengths[batch.rows].max()) * len(batch.rows)
                while flights and (len(flights) >= self.in_flight or self._ready(flights[0])):
                    yield self._land(flights.popleft())
        while flights:
            yield self._land(flights.popleft())

    @torch.inference_mode()
    def _launch(self, chunk: TokenChunk, batch: HostBatch) -> _Flight:
        assert batch.ids is not None and batch.mask is not None
        ids = batch.ids.to(self.device, non_blocking=True)
        mask = batch.mask.to(self.device, non_blocking=True)
        means = self.step(ids, mask)
        if not self.cuda:
            return _Flight(chunk, batch.rows, means, None, ())
        host = torch.empty(means.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(means, non_blocking=True)
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))  # the stream of THIS device, not the current device's
        return _Flight(chunk, batch.rows, host, event, (batch.ids, batch.mask, means))

    @staticmethod
    def _ready(flight: _Flight) -> bool:
        return flight.event is None or flight.event.query()

    @staticmethod
    def _land(flight: _Flight) -> tuple[TokenChunk, np.ndarray, np.ndarray]:
        if flight.event is not None:
            flight.event.synchronize()
        return flight.chunk, flight.rows, flight.host.numpy()

    def _split_after_oom(self, chunk: TokenChunk, rows: np.ndarray, lengths: np.ndarray) -> list[HostBatch]:
        """Free cached memory and return the two halves of ``rows`` (first half runs first), or give up on one."""
        if self.cuda:
            torch.cuda.empty_cache()
        if len(rows) == 1:
            seq_id = chunk.ids[int(rows[0])]
            raise SequenceTooLarge(
                f"{seq_id}: a single sequence of {int(lengths[rows[0]])} tokens does not fit in {self.device} memory"
                + (f" ({self.describe})" if self.describe else ""),
                seq_id,
            )
        self.stats["oom_retries"] += 1
        half = len(rows) // 2
        log.warning(
            "out of memory on a batch of %d sequences (%d padded tokens); retrying as %d + %d",
            len(rows), int(lengths[rows].max()) * len(rows), half, len(rows) - half,
        )
        return [HostBatch(rows[half:]), HostBatch(rows[:half])]  # popped from the end: first half runs first
