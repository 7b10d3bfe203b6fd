"""The device loop: launch batches, keep several in flight, land results in launch order, back off on OOM.

On CUDA each batch is launched without waiting for the previous one: inputs come from pinned host memory
(``non_blocking`` copies) and the pooled means go back through a :class:`~virnucpro.engine.transfer.Transfer`
(pinned buffer, asynchronous copy, event). Up to ``in_flight`` batches are queued on the device; the loop only waits
for the oldest when the queue is full, so the GPU always has the next batch while the host collects results. On CPU
the forward is synchronous and the same code simply runs one batch at a time. Nothing here reads a device value on
the host before the result's event: the launch makes no host sync.

Out of memory (anything :func:`~virnucpro.engine.backoff.is_oom` recognises): the batch is split and retried
(nothing is dropped) and the :class:`~virnucpro.engine.backoff.TokenBudget` remembers the size that fits, so later
batches of that length are split before launch. The device cache is emptied only after the ``except`` block has let
go of the failed batch (its traceback holds the batch's device tensors). A single sequence that still does not fit
is :class:`SequenceTooLarge`, handed to ``on_too_large`` when given, raised otherwise. ``on_too_large`` is called in
launch order, after the results of every batch launched before it, so an ordered consumer (the sink) sees rows of
one chunk after the other even with batches of an earlier chunk still in flight.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from virnucpro.engine.backoff import TokenBudget, is_oom, length_bucket
from virnucpro.engine.batching import TokenChunk, pad_rows
from virnucpro.engine.transfer import Ticket, Transfer, transfer_for
from virnucpro.errors import VirNucProError

log = logging.getLogger("virnucpro")

#: ``step(ids, mask, padded)`` on the device → pooled float32 means ``[n, dim]`` on the device. ``padded`` is False
#: when no row of the batch is padded, known on the host from the lengths, so the model need not ask the device.
Step = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]
#: Test hook: called with the input rows and token lengths of each batch right before its forward pass; raising
#: ``torch.OutOfMemoryError`` (or a ``RuntimeError`` with an OOM text) there exercises the back-off on CPU. ``None`` in production.
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
    padded: bool = True


@dataclass
class PreparedChunk:
    """A tokenised chunk and its batches in launch order (built by the prepare threads)."""

    chunk: TokenChunk
    batches: list[HostBatch]


def build_batch(chunk: TokenChunk, rows: np.ndarray, pad_id: int, pin: bool) -> HostBatch:
    """Pad ``rows`` of ``chunk``; pinned when the device is CUDA so the host→device copy is asynchronous."""
    ids, mask = pad_rows(chunk, rows, pad_id)
    lengths = chunk.lengths[rows]
    if pin:
        ids, mask = ids.pin_memory(), mask.pin_memory()
    return HostBatch(rows, ids, mask, padded=bool(lengths.min() != lengths.max()))


@dataclass
class _Flight:
    """A launched batch (``ticket`` brings its means) or, with ``ticket=None``, rows recorded as too large."""

    chunk: TokenChunk
    rows: np.ndarray
    ticket: Ticket | None

    def ready(self) -> bool:
        return self.ticket is None or self.ticket.ready()


class DeviceLoop:
    """Run prepared chunks through ``step`` on ``device``; yields ``(chunk, rows, means)`` in launch order.

    ``transfer`` brings results back (default: :func:`~virnucpro.engine.transfer.transfer_for` ``device``); batches
    are queued only when it is asynchronous. ``budget``: the OOM ceilings to use and extend (pass the same one to
    every loop on a device so what one file taught holds for the next).
    """

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
        transfer: Transfer | None = None,
        budget: TokenBudget | None = None,
    ) -> None:
        self.step, self.device, self.pad_id = step, device, pad_id
        self.transfer = transfer if transfer is not None else transfer_for(device)
        self.in_flight = max(1, in_flight) if self.transfer.asynchronous else 1
        self.describe = describe
        self.fault_hook = fault_hook
        self.on_too_large = on_too_large
        self.budget = budget if budget is not None else TokenBudget()
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
                parts = self.budget.split(batch.rows, lengths)
                if len(parts) > 1:  # over the size an earlier OOM taught: split before launching
                    pending.extend(HostBatch(rows) for rows in reversed(parts))
                    continue
                rows = batch.rows
                longest = int(lengths[rows].max())
                padded = longest * len(rows)
                flight = self._try_launch(chunk, batch, lengths)
                del batch  # with it the failed batch's host (on CPU: its only) copy of the inputs
                if flight is None:  # out of memory; the except block and its traceback are gone by now
                    self.transfer.empty_cache()
                    self.budget.failed(longest, padded)
                    if len(rows) > 1:
                        pending.extend(HostBatch(part) for part in reversed(self._split_after_oom(chunk, rows, lengths)))
                        continue
                    flight = self._too_large(chunk, rows, lengths)
                else:
                    self.budget.worked(longest, padded)
                    self.stats["batches"] += 1
                    self.stats["padded_tokens"] += padded
                flights.append(flight)
                while flights and (len(flights) >= self.in_flight or flights[0].ready()):
                    yield from self._land(flights.popleft())
        while flights:
            yield from self._land(flights.popleft())

    def _try_launch(self, chunk: TokenChunk, batch: HostBatch, lengths: np.ndarray) -> _Flight | None:
        """The launched batch, or ``None`` when it ran out of memory (any other error propagates)."""
        if batch.ids is None:
            batch = build_batch(chunk, batch.rows, self.pad_id, self.transfer.pin)
        try:
            if self.fault_hook is not None:
                self.fault_hook(chunk.start + batch.rows, lengths[batch.rows])
            return self._launch(chunk, batch)
        except RuntimeError as exc:
            if not is_oom(exc):
                raise
        batch.ids = batch.mask = None
        return None

    @torch.inference_mode()
    def _launch(self, chunk: TokenChunk, batch: HostBatch) -> _Flight:
        assert batch.ids is not None and batch.mask is not None
        ids = batch.ids.to(self.device, non_blocking=True)
        mask = batch.mask.to(self.device, non_blocking=True)
        means = self.step(ids, mask, batch.padded)
        return _Flight(chunk, batch.rows, self.transfer.send(means, (batch.ids, batch.mask)))

    def _land(self, flight: _Flight) -> Iterator[tuple[TokenChunk, np.ndarray, np.ndarray]]:
        if flight.ticket is not None:
            yield flight.chunk, flight.rows, flight.ticket.wait()
        else:
            assert self.on_too_large is not None
            self.on_too_large(flight.chunk, flight.rows)

    def _too_large(self, chunk: TokenChunk, rows: np.ndarray, lengths: np.ndarray) -> _Flight:
        """Raise :class:`SequenceTooLarge` for the one row of ``rows``, or queue its record (``on_too_large``)."""
        seq_id = chunk.ids[int(rows[0])]
        exc = SequenceTooLarge(
            f"{seq_id}: a single sequence of {int(lengths[rows[0]])} tokens does not fit in {self.device} memory"
            + (f" ({self.describe})" if self.describe else ""),
            seq_id,
        )
        if self.on_too_large is None:
            raise exc
        log.warning("%s: recorded as not embedded, the run goes on", exc)
        self.stats["too_large"] += len(rows)
        return _Flight(chunk, rows, None)

    def _split_after_oom(self, chunk: TokenChunk, rows: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
        """``rows`` split within the budget the OOM just taught (about halves the first time), first part first."""
        self.stats["oom_retries"] += 1
        parts = self.budget.split(rows, lengths)
        longest = int(lengths[rows].max())
        log.warning(
            "out of memory on a batch of %d sequences (%d padded tokens); retrying as %s; batches with sequences of "
            "up to %d tokens are held to %d padded tokens from now on",
            len(rows), longest * len(rows), " + ".join(str(len(p)) for p in parts),
            (1 << length_bucket(longest)) - 1, self.budget.ceiling(longest),
        )
        return parts
