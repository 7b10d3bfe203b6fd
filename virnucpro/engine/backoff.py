"""Out-of-memory back-off: which errors mean "the batch did not fit", and the batch size learnt from them.

PyTorch reports running out of accelerator memory in more than one way. The caching allocator raises
``torch.OutOfMemoryError`` ("CUDA out of memory. Tried to allocate ..."), but a library that allocates its own
workspace fails with a plain ``RuntimeError`` (or its subclass ``torch.AcceleratorError``) whose text carries the
library's status: cuBLAS "CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`", cuDNN
"CUDNN_STATUS_ALLOC_FAILED", a raw CUDA call "CUDA error: out of memory"; on CPU the allocator says
"DefaultCPUAllocator: can't allocate memory". All of them are cured the same way, by a smaller batch, so
:func:`is_oom` recognises them in one place; any other ``RuntimeError`` is a real error and must end the run.

:class:`TokenBudget` keeps, per length bucket, the largest padded batch that ran after an out-of-memory, so later
batches of that length are split before they are launched instead of failing (and being halved) again.
"""

from __future__ import annotations

import numpy as np
import torch

from virnucpro.engine.batching import plan_batches

#: Substrings of the messages PyTorch and the CUDA libraries use for a failed allocation (see the module docstring).
OOM_MARKERS = (
    "CUDA out of memory",
    "CUDA error: out of memory",
    "CUDA driver error: out of memory",
    "cudaErrorMemoryAllocation",
    "HIP out of memory",
    "hipErrorOutOfMemory",
    "_ALLOC_FAILED",  # CUBLAS_STATUS_, CUDNN_STATUS_, CUSOLVER_STATUS_, CUSPARSE_STATUS_ALLOC_FAILED, CUFFT_ALLOC_FAILED
    "DefaultCPUAllocator: can't allocate memory",
)


def is_oom(exc: BaseException) -> bool:
    """True when ``exc`` says a batch did not fit in memory (and a smaller one might)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(marker in str(exc) for marker in OOM_MARKERS)


def length_bucket(longest: int) -> int:
    """Bucket of a batch by its longest sequence: powers of two (1, 2-3, 4-7, ...), as memory per token grows with it."""
    return max(1, int(longest)).bit_length()


class TokenBudget:
    """Padded-token ceilings learnt from out-of-memory errors, per length bucket, for the rest of the run.

    After a batch of ``P`` padded tokens fails in bucket ``b``, batches of bucket ``b`` are held to the largest size
    that has run there since (``P // 2`` until one has); a longer bucket is held to the smallest ceiling of the
    buckets at or below it, since longer sequences need at least as much memory per token. Without an OOM there is no
    ceiling and batches run as planned.
    """

    def __init__(self) -> None:
        self._failed: dict[int, int] = {}  # bucket → smallest padded size that ran out of memory
        self._worked: dict[int, int] = {}  # bucket → largest padded size that ran, below the failed one

    def ceiling(self, longest: int) -> int | None:
        """Most padded tokens a batch whose longest sequence has ``longest`` tokens may have; ``None``: no limit."""
        bucket = length_bucket(longest)
        limits = [self._worked.get(b, max(1, failed // 2)) for b, failed in self._failed.items() if b <= bucket]
        return min(limits) if limits else None

    def failed(self, longest: int, padded: int) -> None:
        bucket = length_bucket(longest)
        self._failed[bucket] = min(padded, self._failed.get(bucket, padded))
        if self._worked.get(bucket, 0) >= self._failed[bucket]:
            del self._worked[bucket]

    def worked(self, longest: int, padded: int) -> None:
        bucket = length_bucket(longest)
        if bucket in self._failed and padded < self._failed[bucket]:
            self._worked[bucket] = max(padded, self._worked.get(bucket, 0))

    def split(self, rows: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
        """``rows`` as batches within the ceiling, longest first (one batch when it already fits or is one row)."""
        longest = int(lengths[rows].max())
        ceiling = self.ceiling(longest)
        if ceiling is None or len(rows) == 1 or longest * len(rows) <= ceiling:
            return [rows]
        return [rows[part] for part in plan_batches(lengths[rows], ceiling)]
