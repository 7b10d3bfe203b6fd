"""Token chunks and padded batches: the host-side shapes the device loop consumes.

A chunk keeps its sequences' tokens as one flat ``int32`` array plus offsets instead of one array per sequence:
building a padded batch is then a single vectorised gather, and a chunk's memory is one allocation whatever its size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch


@dataclass
class TokenChunk:
    """``len(ids)`` consecutive input sequences starting at input row ``start``, tokenised.

    ``flat[offsets[i]:offsets[i + 1]]`` are the tokens of sequence ``i`` (special tokens included).
    """

    start: int
    ids: list[str]
    flat: np.ndarray
    offsets: np.ndarray

    @classmethod
    def of(cls, start: int, ids: Sequence[str], tokens: Sequence[np.ndarray]) -> "TokenChunk":
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        offsets = np.zeros(len(tokens) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.concatenate(tokens).astype(np.int32, copy=False) if len(tokens) else np.zeros(0, dtype=np.int32)
        return cls(start, list(ids), flat, offsets)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def tokens(self, i: int) -> np.ndarray:
        return self.flat[self.offsets[i] : self.offsets[i + 1]]


def plan_batches(lengths: np.ndarray, tokens_per_batch: int) -> list[np.ndarray]:
    """Indices grouped into batches, longest first, each batch's padded size ``max_len × n`` ≤ ``tokens_per_batch``.

    Longest first so the biggest batch of a chunk runs first and an out-of-memory shows up at once. A sequence longer
    than ``tokens_per_batch`` gets a batch of its own rather than an error: the OOM back-off decides whether it fits.
    """
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        longest = int(lengths[order[start]])
        count = max(1, tokens_per_batch // max(1, longest))
        batches.append(order[start : start + count])
        start += count
    return batches


def pad_rows(chunk: TokenChunk, rows: np.ndarray, pad_id: int, pad_to: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``[n, L]`` int64 ids (right-padded with ``pad_id``) and boolean mask (True = real token) of ``rows``."""
    starts = chunk.offsets[rows]
    lengths = chunk.offsets[rows + 1] - starts
    width = max(int(lengths.max()) if len(rows) else 0, pad_to or 0)
    columns = np.arange(width, dtype=np.int64)
    mask = columns[None, :] < lengths[:, None]
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    ids[mask] = chunk.flat[(starts[:, None] + columns[None, :])[mask]]
    return torch.from_numpy(ids), torch.from_numpy(mask)


def pad_tokens(tokens: Sequence[np.ndarray], pad_id: int, pad_to: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack token arrays into ``[n, L]`` ids and a boolean mask (True = real token)."""
    chunk = TokenChunk.of(0, [""] * len(tokens), tokens)
    return pad_rows(chunk, np.arange(len(tokens)), pad_id, pad_to)
