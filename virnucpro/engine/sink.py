"""Put computed rows back into input order and write them from a background thread.

The device loop produces rows in length-sorted batch order; a chunk's rows are collected into one buffer and, once
the chunk is complete, the buffer is appended to the HDF5 file by a writer thread. Chunks complete in input order (the
device loop launches them in order), so the file grows sequentially. The writer never blocks the device: it only
applies back-pressure when ``max_pending`` finished chunks are already waiting, which bounds host memory.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

import numpy as np

from virnucpro.engine.batching import TokenChunk
from virnucpro.h5io import MatrixWriter

_STOP = object()


@dataclass
class _Block:
    chunk: TokenChunk
    values: np.ndarray
    valid: np.ndarray
    filled: int = 0


class OrderedSink:
    """Collect ``(chunk, rows, values)`` from the device loop and append finished chunks to ``writer`` in order."""

    def __init__(self, writer: MatrixWriter, max_pending: int = 2) -> None:
        self.writer = writer
        self._current: _Block | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, max_pending))
        self._error: BaseException | None = None
        self._free: list[np.ndarray] = []  # written buffers, ready for the next chunk (appended by the writer thread)
        self._thread = threading.Thread(target=self._write, name="virnucpro-write", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        while True:
            block = self._queue.get()
            if block is _STOP:
                return
            if self._error is not None:
                continue  # keep draining so the producer never blocks on a dead writer
            try:
                self.writer.append(block.chunk.ids, block.values, block.valid)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the producer's thread
                self._error = exc
            self._free.append(block.values)  # reused: a fresh buffer would page-fault on every first touch

    def _block(self, chunk: TokenChunk) -> _Block:
        if self._error is not None:
            raise self._error
        if self._current is None or self._current.chunk is not chunk:
            if self._current is not None:
                raise RuntimeError("chunk started before the previous one was complete")
            self._current = _Block(chunk, self._buffer(len(chunk)), np.ones(len(chunk), dtype=bool))
        return self._current

    def _buffer(self, rows: int) -> np.ndarray:
        while self._free:
            buffer = self._free.pop()
            if buffer.shape[0] >= rows:
                return buffer[:rows]
        return np.empty((rows, self.writer.dim), dtype=np.float32)

    def put(self, chunk: TokenChunk, rows: np.ndarray, values: np.ndarray) -> None:
        """Rows ``rows`` (chunk-local) of ``chunk`` were computed."""
        block = self._block(chunk)
        target = block.values
        for source, row in enumerate(rows.tolist()):  # row copies: ~3x faster than numpy's fancy-index assignment
            target[row] = values[source]
        self._filled(block, len(rows))

    def invalid(self, chunk: TokenChunk, rows: np.ndarray) -> None:
        """Rows ``rows`` of ``chunk`` could not be computed: stored as zeros, flagged invalid."""
        block = self._block(chunk)
        block.values[rows] = 0.0
        block.valid[rows] = False
        self._filled(block, len(rows))

    def _filled(self, block: _Block, n: int) -> None:
        block.filled += n
        if block.filled >= len(block.chunk):
            self._current = None
            self._queue.put(block)

    def finish(self) -> None:
        """Wait until every finished chunk is written; raises what the writer raised."""
        if self._current is not None:
            raise RuntimeError(f"{self._current.filled}/{len(self._current.chunk)} rows of the last chunk computed")
        self._queue.put(_STOP)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Stop the writer thread without raising (error paths)."""
        if self._thread.is_alive():
            self._error = self._error or RuntimeError("closed")
            self._queue.put(_STOP)
            self._thread.join()
