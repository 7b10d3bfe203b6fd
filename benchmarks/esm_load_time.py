#!/usr/bin/env python
"""Time loading an ESM-2 checkpoint: fair-esm ``.pt`` vs ``virnucpro models convert`` safetensors; JSON report.

Writes a random ESM-2 of the given shape in fair-esm's real on-disk layout (``{'model', 'cfg'}``, omegaconf-free cfg,
``encoder.sentence_encoder.*`` keys, fp16 storage like the published 3B file), converts it, then loads each form
with the production loader (:func:`virnucpro.embed.load_embedder`) ``--repeats`` times onto ``--device``. Reported:
file size, seconds to a ready model and GB/s (file bytes / seconds), best and median, plus the cost of hashing.
The page cache is warm after writing (no root to drop it): these are warm-cache figures, an upper bound.

    .venv/bin/python benchmarks/esm_load_time.py --shape 650M --output load.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {"8M": (6, 320, 20), "150M": (30, 640, 20), "650M": (33, 1280, 20), "3B": (36, 2560, 40)}


def write_fair_esm_checkpoint(path: Path, layers: int, dim: int, heads: int, dtype: torch.dtype) -> None:
    """A random checkpoint in fair-esm's layout, written tensor by tensor so memory stays at one copy."""
    from virnucpro.models.esm import ALPHABET, EsmConfig

    config = EsmConfig(layers=layers, embed_dim=dim, ffn_dim=4 * dim, heads=heads, token_dropout=True)
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in config.expected_shapes().items():
        if key.endswith("inv_freq"):
            head_dim = dim // heads
            state[key] = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        else:
            state[key] = (torch.randn(shape, generator=generator) * 0.02).to(dtype)
    model = {f"encoder.sentence_encoder.{k}": v for k, v in state.items()}
    model["encoder.lm_head.weight"] = model["encoder.sentence_encoder.embed_tokens.weight"]  # shared, as published
    model["encoder.lm_head.bias"] = torch.zeros(len(ALPHABET), dtype=dtype)
    cfg = {"model": {"encoder_layers": layers, "encoder_embed_dim": dim, "encoder_ffn_embed_dim": 4 * dim,
                     "encoder_attention_heads": heads, "token_dropout": True}}
    torch.save({"model": model, "cfg": cfg}, path)


def time_load(path: Path, device: str, precision: str, repeats: int) -> dict:
    from virnucpro.embed import load_embedder

    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        embedder = load_embedder("protein", str(path), device=device, precision=precision)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        del embedder
    size = path.stat().st_size
    best, median = min(seconds), statistics.median(seconds)
    return {"file": path.name, "bytes": size, "precision": precision, "seconds": [round(s, 3) for s in seconds],
            "best_s": round(best, 3), "median_s": round(median, 3),
            "gb_per_s_best": round(size / best / 1e9, 3), "gb_per_s_median": round(size / median / 1e9, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="650M", choices=sorted(SHAPES))
    parser.add_argument("--store", default="fp16", choices=["fp16", "fp32"], help="checkpoint dtype (3B: fp16)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temporary checkpoints (created; default: system temp)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    from virnucpro import checksum
    from virnucpro.models.convert import convert_esm

    layers, dim, heads = SHAPES[args.shape]
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        pt, st = Path(tmp) / f"esm2_random_{args.shape}.pt", Path(tmp) / f"esm2_random_{args.shape}.safetensors"
        write_fair_esm_checkpoint(pt, layers, dim, heads, torch.float16 if args.store == "fp16" else torch.float32)
        start = time.perf_counter()
        digest = checksum.file_sha256(pt)
        hash_s = time.perf_counter() - start
        convert_esm(pt, st)
        checksum.file_sha256(st)  # recorded once (sidecar), as `models download` does: loads below do not re-hash
        report = {
            "shape": {"name": args.shape, "layers": layers, "dim": dim, "heads": heads, "stored": args.store},
            "hardware": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                         "torch": torch.__version__, "device": args.device},
            "sha256_first_hash": {"bytes": pt.stat().st_size, "seconds": round(hash_s, 3),
                                  "gb_per_s": round(pt.stat().st_size / hash_s / 1e9, 3), "digest": digest[:12]},
            "loads": [time_load(path, args.device, precision, args.repeats) for precision in args.precision for path in (pt, st)],
            "note": "warm page cache (files just written); checksums recorded once, not re-hashed per load",
        }
    from virnucpro.bench import emit_report

    emit_report(report, args.output)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
