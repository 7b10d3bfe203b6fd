"""Runs :func:`~virnucpro.readblock.process_block` over the blocks of an input, results in input order: in this
process, or in a :class:`~virnucpro.blockpool.BlockPool` of worker processes; and how many workers a run gets.

The reading process keeps the order, so the outputs are byte-identical whatever the worker count, and memory stays
at a few blocks per worker whatever the input size.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from typing import TYPE_CHECKING, Iterable, Iterator

from virnucpro.fasta import BLOCK_BYTES, RawBlock
from virnucpro.readblock import BlockResult, process_block

if TYPE_CHECKING:
    from virnucpro.blockpool import BlockPool

#: Shared-memory slot of a worker, in blocks: room for a block, or for its formatted records (usually 1-2x the block;
#: a result that does not fit travels pickled, correct but slower).
SLOT_FACTOR = 4

#: Cap of the automatic worker count: past it the reading process (ordering, shard writes) is the bottleneck, and a
#: scheduler that does not pin CPUs (Docker without --cpuset) would otherwise see every core of the host.
MAX_AUTO_WORKERS = 8


def default_workers() -> int:
    """Every core this process may use (its CPU affinity: taskset, cpusets), at most :data:`MAX_AUTO_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_AUTO_WORKERS))


def _start_method():  # noqa: ANN202 - a multiprocessing context
    """``fork`` (workers ready in milliseconds, nothing re-imported) when no other thread could hold a lock at fork
    time and torch, whose thread pools do not survive a fork, is not loaded; ``spawn`` otherwise (``virnucpro run``).
    tqdm's monitor thread only sleeps and the workers never touch tqdm, so it does not count."""
    from multiprocessing import get_context  # imported when needed: start-up time counts for small inputs

    others = [t for t in threading.enumerate() if t is not threading.main_thread() and t.name != "tqdm_monitor"]
    if sys.platform.startswith("linux") and not others and "torch" not in sys.modules:
        return get_context("fork")
    return get_context("spawn")


class BlockRunner:
    """Runs :func:`process_block` over a stream of blocks, results in input order, in this process or in a
    :class:`~virnucpro.blockpool.BlockPool` of ``workers`` processes.

    The pool starts only when an input has a second block, so small inputs never pay for it; while it starts, this
    process handles the first block.
    """

    def __init__(self, workers: int, block_bytes: int = BLOCK_BYTES) -> None:
        self.workers = max(1, int(workers))
        self.block_bytes = block_bytes
        self._pool: BlockPool | None = None
        self._context = _start_method()  # decided before this stage starts threads of its own

    def _executor(self) -> BlockPool:
        if self._pool is None:
            from virnucpro.blockpool import BlockPool

            self._pool = BlockPool(self.workers, self._context, SLOT_FACTOR * self.block_bytes)
        return self._pool

    def map(self, blocks: Iterable[RawBlock], *args: object) -> Iterator[BlockResult]:
        it = iter(blocks)
        first = next(it, None)
        if first is None:
            return
        second = next(it, None) if self.workers > 1 else None
        if second is None:
            yield process_block(first, *args)  # type: ignore[arg-type]
            for block in it:
                yield process_block(block, *args)  # type: ignore[arg-type]
            return
        results = self._executor().map(process_block, itertools.chain([second], it), *args)  # submits right away
        yield process_block(first, *args)  # type: ignore[arg-type]
        yield from results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

