"""Which device and numeric precision a run uses: one place for ``--device`` and ``--precision``.

The engine, the benchmark and the runner all resolve the user's words here, so ``auto`` means the same everywhere.
"""

from __future__ import annotations

import resource

import torch

from virnucpro.errors import InputError

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}




def resolve_device(spec: str) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` → a usable device (CUDA_VISIBLE_DEVICES applies through torch)."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise InputError(f"--device {spec!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise InputError(f"--device {spec!r}: expected auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise InputError(f"--device {spec}: no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES)")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return device


def resolve_precision(spec: str, device: torch.device) -> torch.dtype:
    """``auto`` → bf16 on CUDA compute capability >= 8.0 (tensor cores, fp32 range), fp32 elsewhere (CPU included).

    fp16 is only used when asked for: its range can overflow in deep post-norm stacks.
    """
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0):
            return torch.bfloat16
        return torch.float32
    if spec not in PRECISIONS:
        raise InputError(f"--precision {spec!r}: expected auto, {', '.join(PRECISIONS)}")
    return PRECISIONS[spec]


def precision_name(dtype: torch.dtype) -> str:
    """Inverse of :data:`PRECISIONS` (recorded in HDF5 attributes)."""
    return next(name for name, value in PRECISIONS.items() if value == dtype)


def peak_memory(device: torch.device) -> int:
    """Peak accelerator memory on CUDA, else the process's peak resident set size (bytes)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
