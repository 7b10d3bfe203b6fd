#!/usr/bin/env python
"""DNABERT-S attention bias: memory built per forward and forward speed, padded and unpadded batches; JSON.

A random-weight DNABERT-S (real width: 768, 12 heads, 3072; ``--layers`` of them) runs ``--repeats`` forwards of a
``--batch`` × ``--length`` batch, with no padding and with padded rows. Reported per case: median forward seconds, the
bytes of every new tensor the forward creates (total, and those shaped like an attention bias ``[..., L, L]``,
counted by a dispatch mode), and the process's peak RSS at the end. Run it on two checkouts to compare them: a checkout whose
``forward`` has no ``padded`` argument is called without it (it then decides about padding itself).

    OMP_NUM_THREADS=1 python benchmarks/attention_bias.py --output bias.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parents[1]


class AllocationCounter(TorchDispatchMode):
    """Sums the bytes of every new tensor an operator returns (views of an input are not new), and separately those
    shaped like an attention bias (last two dimensions ``length × length``)."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.length = length
        self.total = self.bias = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {a.untyped_storage().data_ptr() for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)}
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                nbytes = t.numel() * t.element_size()
                self.total += nbytes
                if t.dim() >= 2 and tuple(t.shape[-2:]) == (self.length, self.length):
                    self.bias += nbytes
        return out


def _forward(module, ids, mask, padded: bool):
    try:
        return module(ids, mask, padded=padded)
    except TypeError:  # a checkout before the host-side padding flag
        return module(ids, mask)


def measure(layers: int, batch: int, length: int, repeats: int, padded: bool, dtype: torch.dtype) -> dict:
    from virnucpro.models.dnabert import DnaBert, DnaBertConfig

    torch.manual_seed(0)
    config = DnaBertConfig(4096, 768, layers, 12, 3072, 2, 1e-12)
    module = DnaBert(config).eval().requires_grad_(False).to(dtype)
    ids = torch.randint(5, 4096, (batch, length))
    mask = torch.ones(batch, length, dtype=torch.bool)
    if padded:  # rows shorter by up to 10 %, as in a length-sorted batch
        for row in range(1, batch):
            mask[row, length - (row * length // 10) // batch :] = False
    times = []
    with torch.inference_mode():
        _forward(module, ids, mask, padded)  # warm-up (and cache building, where there is a cache)
        for _ in range(repeats):
            start = time.perf_counter()
            _forward(module, ids, mask, padded)
            times.append(time.perf_counter() - start)
        counter = AllocationCounter(length)
        with counter:
            _forward(module, ids, mask, padded)
    return {
        "padded": padded, "dtype": str(dtype).removeprefix("torch."), "layers": layers, "batch": batch, "length": length,
        "forward_seconds_median": round(statistics.median(times), 4),
        "allocated_bytes_per_forward": counter.total, "bias_sized_bytes_per_forward": counter.bias,
    }


def main(argv: list[str] | None = None) -> int:
    start = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    import virnucpro

    results = [measure(args.layers, args.batch, args.length, args.repeats, padded, dtype) for padded in (False, True)]
    report = {
        "benchmark": "attention_bias",
        "code": str(Path(virnucpro.__file__).resolve().parent),
        "hardware": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(), "torch": torch.__version__},
        "results": results,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "seconds": round(time.perf_counter() - start, 2),
    }
    text = json.dumps(report, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
