"""Read a FASTA in bounded chunks and prepare each chunk (tokenise, batch, pad, pin) in worker threads, ahead of use.

The device must never wait for the host, and host memory must not grow with the input. A feeder thread reads the
FASTA ``chunk_size`` records at a time and hands each chunk to a pool of ``workers`` threads; at most ``depth`` chunks
are in preparation or waiting at any time (the feeder blocks otherwise), and chunks come out in input order. Threads
are enough: the expensive parts (the Rust BPE tokenizer, numpy gathers, pinning) release the GIL.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Generic, Iterable, Iterator, TypeVar

from virnucpro.fasta import read_fasta

T = TypeVar("T")
R = TypeVar("R")

_END = object()


def default_workers() -> int:
    """Tokenisation threads when the caller gives none: every core, at most 8 (beyond that the device is the limit)."""
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))


def read_chunks(path: Path, chunk_size: int) -> Iterator[tuple[int, list[str], list[str]]]:
    """``(first row, ids, sequences)`` of consecutive blocks of at most ``chunk_size`` records."""
    start, ids, seqs = 0, [], []
    for record in read_fasta(path):
        ids.append(record.id)
        seqs.append(record.sequence)
        if len(ids) >= chunk_size:
            yield start, ids, seqs
            start, ids, seqs = start + len(ids), [], []
    if ids:
        yield start, ids, seqs


class Prefetch(Generic[T, R]):
    """``work(item)`` for every item of ``source`` in ``workers`` threads, at most ``depth`` items ahead; in order.

    Iterate to get the results; an exception raised by the source or by ``work`` is raised by the iteration at the
    position it happened. :meth:`close` (also on ``with`` exit) stops reading and waits for the threads.
    """

    def __init__(self, source: Iterable[T], work: Callable[[T], R], workers: int, depth: int | None = None) -> None:
        self._work = work
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="virnucpro-prepare")
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth if depth is not None else workers + 1))
        self._stop = threading.Event()
        self._feeder = threading.Thread(target=self._feed, args=(iter(source),), name="virnucpro-read", daemon=True)
        self._feeder.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _feed(self, source: Iterator[T]) -> None:
        try:
            for item in source:
                if self._stop.is_set() or not self._put(self._pool.submit(self._work, item)):
                    return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(exc)

    def __iter__(self) -> Iterator[R]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, Future)
            yield item.result()

    def close(self) -> None:
        self._stop.set()
        while True:  # unblock the feeder and drop what was prepared
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Future):
                item.cancel()
        self._feeder.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "Prefetch[T, R]":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
