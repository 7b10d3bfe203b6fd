"""Which device and numeric precision a run uses: one place for ``--device`` and ``--precision``.

The engine, the benchmark and the runner all resolve the user's words here, so ``auto`` means the same everywhere.
"""

from __future__ import annotations

import functools
import logging
import os
import resource
from dataclasses import dataclass

import torch

from virnucpro.errors import InputError

log = logging.getLogger("virnucpro.device")


@dataclass(frozen=True)
class Precision:
    """A numeric mode: ``dtype`` holds weights and the residual stream, ``matmul`` the linear layers' weights.

    * ``fp32`` — the original's arithmetic; on CUDA TF32 is switched OFF for matmuls.
    * ``tf32`` — fp32 storage, matmuls on TF32 tensor cores (inputs rounded to 10 mantissa bits, fp32 accumulation);
      on CPU identical to fp32 (no TF32 units).
    * ``bf16`` — everything in bfloat16 (weights, activations, LayerNorm inputs).
    * ``bf16-mixed`` — bf16 matmuls (linear layers, attention), float32 residual stream, LayerNorm, softmax, pooling.
    * ``fp16`` — only when asked for: its range can overflow in deep post-norm stacks.

    docs/precision.md has the measured disagreement of each mode with fp32.
    """

    name: str
    dtype: torch.dtype
    matmul: torch.dtype
    tf32: bool = False

    def configure(self, device: torch.device) -> None:
        """Set the process-wide TF32 switches this mode implies (CUDA only; a run uses one precision)."""
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = self.tf32
            torch.backends.cudnn.allow_tf32 = self.tf32


PRECISIONS: dict[str, Precision] = {
    "fp32": Precision("fp32", torch.float32, torch.float32),
    "tf32": Precision("tf32", torch.float32, torch.float32, tf32=True),
    "bf16": Precision("bf16", torch.bfloat16, torch.bfloat16),
    "bf16-mixed": Precision("bf16-mixed", torch.float32, torch.bfloat16),
    "fp16": Precision("fp16", torch.float16, torch.float16),
}
#: What ``auto`` means on CUDA devices with bf16 tensor cores (compute capability >= 8.0); CPU: always fp32.
#: Chosen from docs/precision.md: see there for the flip rates and cosines behind it.
AUTO_CUDA = "bf16"


def as_precision(value: "Precision | torch.dtype | str") -> Precision:
    """A :class:`Precision` from itself, a mode name, or a plain dtype (fp32/bf16/fp16 modes)."""
    if isinstance(value, Precision):
        return value
    if isinstance(value, str):
        return PRECISIONS[value]
    for mode in PRECISIONS.values():
        if mode.dtype == value and mode.matmul == value and not mode.tf32:
            return mode
    raise ValueError(f"no precision mode for {value!r}")


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


def use_device(device: torch.device) -> None:
    """Make ``device`` (``cuda:N``) the current CUDA device; nothing for CPU or a bare ``cuda`` (keeps the current one).

    Several things follow the CURRENT device rather than the tensors' device: the stream that bare
    ``torch.cuda.current_stream()`` and new events refer to, the cuBLAS/cuDNN handles and workspaces, and memory
    that libraries allocate on the side. A process working on ``cuda:1`` while ``cuda:0`` is current would create
    contexts and workspaces on GPU 0 and wait on the wrong stream; so the device is made current before the model
    is loaded (one device per process: the CLI, or one worker of the multi-GPU pool).
    """
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device.index)


def resolve_precision(spec: str, device: torch.device) -> Precision:
    """``auto`` → :data:`AUTO_CUDA` on CUDA compute capability >= 8.0, fp32 elsewhere (CPU included); else the named mode."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0):
            return PRECISIONS[AUTO_CUDA]
        return PRECISIONS["fp32"]
    if spec not in PRECISIONS:
        raise InputError(f"--precision {spec!r}: expected auto, {', '.join(PRECISIONS)}")
    if device.type == "cpu" and PRECISIONS[spec].matmul != torch.float32:
        check_cpu_precision(spec)
    return PRECISIONS[spec]


@functools.lru_cache(maxsize=None)
def check_cpu_precision(name: str) -> None:
    """Before a CPU run in a 16-bit mode: refuse it when this CPU's kernels cannot run it, else say what it does.

    PyTorch picks some 16-bit CPU code paths from what the processor has (AMX, AVX-512 BF16) but runs them with the
    vector code ``ATEN_CPU_CAPABILITY`` selects; with ``default`` or ``avx2`` on such a processor they stop deep inside
    a forward pass (``pack_vnni2 is only supported when avx512 is supported``). A few small runs of the operations the
    models use (linear layers, attention with and without a bias, LayerNorm) find that here, in milliseconds and
    before any output exists, instead of as a traceback after the prepare stage. Once per process and mode (cached).
    """
    mode = PRECISIONS[name]
    dtype = mode.matmul
    try:
        x = torch.randn(4, 40, 64).to(dtype)
        torch.nn.functional.layer_norm(torch.nn.functional.linear(x, torch.randn(128, 64).to(dtype)), (128,))
        for length in (40, 520):  # short and long sequences take different attention kernels
            q = torch.randn(2, 4, length, 32).to(dtype)
            bias = torch.zeros(2, 4, length, length).to(dtype)
            torch.nn.functional.scaled_dot_product_attention(q, q, q, scale=0.2)
            torch.nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=bias, scale=0.2)
    except RuntimeError as exc:
        capability = os.environ.get("ATEN_CPU_CAPABILITY")
        setting = f" with ATEN_CPU_CAPABILITY={capability}" if capability else ""
        raise InputError(
            f"--precision {name} cannot run on this CPU{setting}: PyTorch's {dtype_name(dtype)} kernels failed "
            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); use --precision fp32 (the CPU default)"
            + (" or unset ATEN_CPU_CAPABILITY" if capability else "")
        ) from None
    if dtype == torch.float16:
        log.warning("--precision %s on CPU: weights and activations in float16, whose range can overflow in deep "
                    "models (docs/precision.md); fp32 is the CPU default", name)
        return
    what = "matrix products in bfloat16, residual stream and LayerNorm in float32" if mode.dtype == torch.float32 \
        else "weights and activations in bfloat16"
    log.warning(
        "--precision %s on CPU: %s; scores move slightly from fp32's and a few calls next to a tie flip, and it is "
        "slower than fp32 on CPUs without bf16 matrix units (both measured in docs/precision.md); fp32 is the CPU "
        "default", name, what,
    )


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(dtype, str(dtype).replace("torch.", ""))


def precision_name(precision: "Precision | torch.dtype") -> str:
    """Name of a mode (recorded in HDF5 attributes); a plain dtype names its pure mode."""
    return as_precision(precision).name


def peak_memory(device: torch.device) -> int:
    """Peak accelerator memory on CUDA, else the process's peak resident set size (bytes)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
