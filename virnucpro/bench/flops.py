"""The MFU arithmetic: FLOPs per token of an encoder, the device's peak (datasheet or measured) and their ratio.

Kept apart from the timing code so the denominator of every MFU figure is defined, tested and documented once.
"""

from __future__ import annotations

import re
import time

import torch

from virnucpro.device import Precision, as_precision, precision_name
from virnucpro.embed import Embedder


def model_shape(embedder: Embedder) -> tuple[int, int, int]:
    """(non-embedding parameters, layers, hidden size) of the encoder."""
    module = embedder.encoder.module
    params = sum(p.numel() for name, p in module.named_parameters() if "embed" not in name.split(".")[-2])
    layers = getattr(module.config, "num_hidden_layers", None) or module.config.layers
    return params, int(layers), int(embedder.dim)


def flops_per_token(params: int, layers: int, dim: int, mean_len: float) -> float:
    """Forward FLOPs per real token: 2 per weight, plus QKᵀ and AV (4·layers·dim·length)."""
    return 2.0 * params + 4.0 * layers * dim * mean_len


#: Datasheet dense (no sparsity) peak TFLOP/s per GPU: the MFU denominator on CUDA. Matched against the device name
#: in order (first match wins), so "H100 PCIe" is tested before the plain "H100" (SXM, HBM3).
DATASHEET_TFLOPS: list[tuple[str, str, dict[str, float]]] = [
    ("H200", r"H200", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("H100 PCIe", r"H100.*PCIE", {"bf16": 756.5, "fp16": 756.5, "tf32": 378.0, "fp32": 51.2}),
    ("H100 NVL", r"H100.*NVL", {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0}),
    ("H100 SXM", r"H100", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("A100", r"A100", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("L40S", r"L40S", {"bf16": 362.05, "fp16": 362.05, "tf32": 183.0, "fp32": 91.6}),
    ("L4", r"\bL4\b", {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.3}),
    ("A10", r"\bA10\b", {"bf16": 125.0, "fp16": 125.0, "tf32": 62.5, "fp32": 31.2}),
]


def datasheet_peak(gpu_name: str, precision: Precision | torch.dtype | str) -> tuple[str, float] | None:
    """(table entry, dense peak TFLOP/s) of ``gpu_name`` for the matmul arithmetic of ``precision``; None if unknown.

    bf16-mixed runs its matmuls in bf16; tf32 on tensor cores; fp32 on the CUDA cores.
    """
    mode = as_precision(precision)
    key = "tf32" if mode.tf32 else {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(mode.matmul, "fp32")
    for entry, pattern, peaks in DATASHEET_TFLOPS:
        if re.search(pattern, gpu_name, flags=re.IGNORECASE):
            return entry, peaks[key]
    return None


def measured_peak_tflops(device: torch.device, dtype: Precision | torch.dtype, min_seconds: float = 0.25) -> float:
    """Dense matmul TFLOP/s in the run's matmul dtype: the best of 3 timed trials of ≥ ``min_seconds`` each.

    One short timing (the old 5 × 512² matmuls) under-measures the peak and gave MFU > 1; repeating until the timer
    is meaningful and keeping the best trial gives the device's sustained ceiling.
    """
    n = 8192 if device.type == "cuda" else 1024
    matmul = as_precision(dtype).matmul
    a = torch.randn(n, n, device=device, dtype=matmul)
    b = torch.randn(n, n, device=device, dtype=matmul)
    for _ in range(2):  # warm-up: kernels, caches, clocks
        a @ b
    sync(device)
    best = 0.0
    for _ in range(3):
        reps, start = 0, time.perf_counter()
        while True:
            a @ b
            reps += 1
            if reps % 4 == 0 or device.type != "cuda":
                sync(device)
                if time.perf_counter() - start >= min_seconds:
                    break
        best = max(best, 2.0 * n**3 * reps / (time.perf_counter() - start) / 1e12)
    return best


def resolve_peak(device: torch.device, dtype: Precision | torch.dtype, override: float | None) -> tuple[float, str]:
    """The MFU denominator and where it came from: ``--peak-tflops``, the datasheet (CUDA) or a measured matmul."""
    if override:
        return float(override), "--peak-tflops"
    if device.type == "cuda":
        found = datasheet_peak(torch.cuda.get_device_name(device), dtype)
        if found is not None:
            return found[1], f"datasheet {found[0]} {precision_name(dtype)} dense"
    return measured_peak_tflops(device, dtype), "measured matmul"


def mfu(achieved_tflops: float, peak_tflops: float) -> tuple[float | None, bool]:
    """Model-FLOP utilisation, never above 1, and whether it had to be clamped.

    Above 1 means the denominator was too low (a contended CPU measured slower than it later ran, or a wrong
    ``--peak-tflops``); the report says so instead of printing an impossible number.
    """
    if peak_tflops <= 0:
        return None, False
    value = achieved_tflops / peak_tflops
    return (1.0, True) if value > 1.0 else (value, False)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on CPU where every call is synchronous."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
