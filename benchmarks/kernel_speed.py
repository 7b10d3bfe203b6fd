#!/usr/bin/env python
"""Forward-pass speed of each attention path (``sdpa``, ``reference``) and of ``torch.compile``; JSON.

Random-weight encoders (``--dna-shape``/``--esm-shape``) embed real frames (/work/shared/realdata, default
virus_3kb.fa at chunk 500) through the production engine (:meth:`Embedder.embed_tokens`: length-sorted,
token-budgeted batches), so each batch carries the padding a run would have. Reported per path: seconds
(best of ``--repeats``), tokens/s and the speed-up over ``sdpa``; with ``--compile``, the first-call (compile) time and
the steady-state speed of the compiled layers.

    .venv/bin/python benchmarks/kernel_speed.py --output kernels.json
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DNA_SHAPES = {"full": (768, 12, 12, 3072), "small": (256, 4, 4, 1024)}
ESM_SHAPES = {"8M": (6, 320, 20), "35M": (12, 480, 20), "150M": (30, 640, 20)}


def _frames(fasta: Path, chunk: int, n: int, workdir: Path) -> tuple[list[str], list[str]]:
    from virnucpro.fasta import read_fasta
    from virnucpro.prepare import prepare

    prepare([fasta], workdir, chunk_length=chunk, n_shards=1, progress=False)
    nuc = [r.sequence for p in sorted(workdir.glob("*.nuc.fa")) for r in read_fasta(p)]
    prot = [r.sequence for p in sorted(workdir.glob("*.prot.fa")) for r in read_fasta(p)]
    pick = np.random.default_rng(0).choice(len(nuc), min(n, len(nuc)), replace=False)
    return [nuc[i] for i in pick], [prot[i] for i in pick], nuc


def _embedders(kind: str, shape: str, corpus: list[str]):
    """A random-weight embedder; DNA: BPE (4096) trained on ``corpus`` (all frames of the data set)."""
    from virnucpro.bench import train_dna_tokenizer
    from virnucpro.device import PRECISIONS
    from virnucpro.embed import Embedder
    from virnucpro.models.dnabert import DnaBert, DnaBertConfig, DnaTokenizer
    from virnucpro.models.esm import PAD, Esm2, EsmConfig, tokenize_proteins
    from virnucpro.models.layers import LoadedEncoder

    torch.manual_seed(0)
    if kind == "dna":
        width, layers, heads, ffn = DNA_SHAPES[shape]
        module = DnaBert(DnaBertConfig(4096, width, layers, heads, ffn, 2, 1e-12)).eval().requires_grad_(False)
        with tempfile.TemporaryDirectory() as tmp:
            tokenizer = DnaTokenizer(train_dna_tokenizer(corpus, 4096, Path(tmp)), 4096)
        encoder = LoadedEncoder(shape, "random", width, module, tokenizer, tokenizer.pad_id, (0, 0))
    else:
        layers, width, heads = ESM_SHAPES[shape]
        module = Esm2(EsmConfig(layers=layers, embed_dim=width, ffn_dim=4 * width, heads=heads, token_dropout=True))
        module = module.eval().requires_grad_(False).fuse()
        encoder = LoadedEncoder(shape, "random", width, module, tokenize_proteins, PAD, (1, 1), pool_limit=1024)
    return Embedder(kind, encoder, torch.device("cpu"), PRECISIONS["fp32"])


def _run(embedder, tokens, tpb: int) -> float:
    start = time.perf_counter()
    for _ in embedder.embed_tokens(tokens, tpb):
        pass
    return time.perf_counter() - start


def measure(kind: str, shape: str, seqs: list[str], tpb: int, repeats: int, compile_: bool, corpus: list[str] = ()) -> dict:
    from virnucpro.embed import plan_batches
    from virnucpro.models.layers import compile_layers

    embedder = _embedders(kind, shape, list(corpus) or seqs)
    tokens = embedder.encoder.tokenize(["x"] * len(seqs), seqs)
    n_tokens = int(sum(len(t) for t in tokens))
    lengths = np.array([len(t) for t in tokens])
    padded = sum(int(lengths[b].max()) * len(b) for b in plan_batches(lengths, tpb))
    out = {"kind": kind, "shape": shape, "sequences": len(seqs), "tokens": n_tokens, "padded_tokens": padded,
           "tokens_per_batch": tpb, "paths": {}}
    for mode in ("sdpa", "reference"):
        embedder.attention = mode
        _run(embedder, tokens[: max(1, len(tokens) // 8)], tpb)  # warm-up
        best = min(_run(embedder, tokens, tpb) for _ in range(repeats))
        print(f"{kind} {shape} {mode}: {best:.2f}s", file=sys.stderr)
        out["paths"][mode] = {"seconds": round(best, 3), "tokens_per_s": round(n_tokens / best, 1)}
    for mode in out["paths"]:
        out["paths"][mode]["speedup_vs_sdpa"] = round(out["paths"]["sdpa"]["seconds"] / out["paths"][mode]["seconds"], 3)
    if compile_:
        layers = embedder.encoder.module.encoder.layer if kind == "dna" else embedder.encoder.module.layers
        compile_layers(layers)
        for mode in ("sdpa",):
            embedder.attention = mode
            start = time.perf_counter()
            try:
                _run(embedder, tokens[: max(1, len(tokens) // 8)], tpb)
            except Exception as exc:  # report, do not hide: compile support varies by path and torch version
                out["paths"][f"{mode}+compile"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
                continue
            first = time.perf_counter() - start
            best = min(_run(embedder, tokens, tpb) for _ in range(repeats))
            out["paths"][f"{mode}+compile"] = {"first_call_s": round(first, 1), "seconds": round(best, 3),
                                               "tokens_per_s": round(n_tokens / best, 1),
                                               "speedup_vs_sdpa": round(out["paths"]["sdpa"]["seconds"] / best, 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/realdata/virus_3kb.fa"))
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--sequences", type=int, default=256)
    parser.add_argument("--dna-shape", default="small", choices=sorted(DNA_SHAPES))
    parser.add_argument("--esm-shape", default="8M", choices=sorted(ESM_SHAPES))
    parser.add_argument("--tokens-per-batch", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd layers")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        nuc, prot, corpus = _frames(args.data, args.chunk, args.sequences, Path(tmp))
    report = {"hardware": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                           "torch": torch.__version__},
              "data": f"{args.data.name}@{args.chunk}",
              "results": [measure("dna", args.dna_shape, nuc, args.tokens_per_batch, args.repeats, args.compile, corpus),
                          measure("protein", args.esm_shape, prot, args.tokens_per_batch, args.repeats, args.compile)]}
    from virnucpro.bench import emit_report

    emit_report(report, args.output)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
