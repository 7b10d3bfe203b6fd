#!/usr/bin/env python
"""Measure what each ``--precision`` mode does to the science; JSON report (docs/precision.md quotes it).

Two measurements per mode, both against fp32 (the original's arithmetic):

1. flips: the tiny reference models (tests/data/reference/models: DNABERT-S, ESM-2 and the classifier) embed and
   classify the stop-free frames of real sequences (default: /work/shared/realdata virus_3kb.fa and host_3kb.fa at
   chunk 500 and 300). Reported: frames whose call (virus/others) differs from fp32, windows whose Is_Virus differs,
   and how far from a tie (|score2 - score1| under fp32) the flipped frames were.
2. cosine at real sizes: random-weight encoders of the real shapes (DNABERT-S 768 wide, 12 layers; ESM-2 at
   ``--esm-shape``, default the 650M shape, 1280 wide, 33 layers, because a 3B fp32 model does not fit a small
   machine's time and memory) on real frames; min/mean cosine and max |diff| of the mean embeddings vs fp32.

``tf32`` cannot run on a CPU (no TF32 units): it is EMULATED by rounding every matmul input to TF32 (10 mantissa bits,
round to nearest even) with fp32 accumulation, through a TorchFunctionMode over ``F.linear`` and ``torch.matmul`` with
the explicit (``reference``) attention path, so the attention products are rounded too.

    .venv/bin/python benchmarks/precision_report.py --output precision.json
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "data" / "reference" / "models"
REALDATA = Path("/work/shared/realdata")
MODES = ("fp32", "tf32", "bf16", "bf16-mixed", "fp16")
DEFAULT_MODES = ("fp32", "tf32", "bf16", "bf16-mixed")
ESM_SHAPES = {  # layers, width, heads (ffn = 4 x width)
    "650M": (33, 1280, 20),
    "3B": (36, 2560, 40),
    "150M": (30, 640, 20),
}


def to_tf32(x: torch.Tensor) -> torch.Tensor:
    """Round float32 to TF32 (keep 10 of 23 mantissa bits, round to nearest even)."""
    if x.dtype != torch.float32:
        return x
    bits = x.contiguous().view(torch.int32)
    rounded = (bits + 0x0FFF + ((bits >> 13) & 1)) & ~0x1FFF
    return rounded.view(torch.float32)


class EmulatedTF32(TorchFunctionMode):
    """Every ``F.linear`` / ``torch.matmul`` sees TF32-rounded inputs; products accumulate in fp32."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (F.linear, torch.matmul, torch.Tensor.matmul, torch.bmm, torch.einsum):
            args = tuple(to_tf32(a) if isinstance(a, torch.Tensor) else a for a in args)
        return func(*args, **kwargs)


def _load(kind: str, path: Path, mode: str, attention: str = "sdpa"):
    from virnucpro.embed import load_embedder

    precision = "fp32" if mode == "tf32" else mode
    return load_embedder(kind, str(path), device="cpu", precision=precision, attention="reference" if mode == "tf32" else attention)


def _embed(embedder, tokens: list[np.ndarray], mode: str, tokens_per_batch: int = 4096) -> np.ndarray:
    out = np.zeros((len(tokens), embedder.dim), dtype=np.float32)
    with EmulatedTF32() if mode == "tf32" else nullcontext():
        for rows, values in embedder.embed_tokens(tokens, tokens_per_batch):
            out[rows] = values
    return out


def _frames(fasta: Path, chunk: int, workdir: Path) -> tuple[list[str], list[str], list[str]]:
    from virnucpro.fasta import read_fasta
    from virnucpro.prepare import prepare

    out = workdir / f"{fasta.stem}-{chunk}"
    prepare([fasta], out, chunk_length=chunk, n_shards=1, progress=False)
    nuc = {r.id: r.sequence for p in sorted(out.glob("*.nuc.fa")) for r in read_fasta(p)}
    prot = {r.id: r.sequence for p in sorted(out.glob("*.prot.fa")) for r in read_fasta(p)}
    ids = list(nuc)
    return ids, [nuc[i] for i in ids], [prot[i] for i in ids]


def flips(datasets: list[tuple[Path, int]], modes: list[str], workdir: Path, max_frames: int | None) -> list[dict]:
    from virnucpro.models.classifier import load_classifier
    from virnucpro.predict import score_features

    classifier = load_classifier(MODELS / "classifier.pth")
    results = []
    for fasta, chunk in datasets:
        ids, nuc, prot = _frames(fasta, chunk, workdir)
        if max_frames and len(ids) > max_frames:  # a fixed random sample of frames (windows then partly covered)
            pick = np.sort(np.random.default_rng(chunk).choice(len(ids), max_frames, replace=False))
            ids, nuc, prot = [ids[i] for i in pick], [nuc[i] for i in pick], [prot[i] for i in pick]
        windows = np.array([i[:-2] for i in ids])
        _, window_index = np.unique(windows, return_inverse=True)
        probs: dict[str, np.ndarray] = {}
        for mode in modes:
            start = time.perf_counter()
            dna, esm = _load("dna", MODELS / "dnabert", mode), _load("protein", MODELS / "esm2_t2_tiny.pt", mode)
            feats = np.concatenate(
                [_embed(dna, dna.encoder.tokenize(ids, nuc), mode), _embed(esm, esm.encoder.tokenize(ids, prot), mode)], axis=1
            )
            probs[mode] = score_features(classifier, feats)
            print(f"{fasta.name}@{chunk} {mode}: {time.perf_counter() - start:.1f}s", file=sys.stderr)
        base = probs["fp32"]
        base_call = base[:, 1] > base[:, 0]
        base_window = _window_calls(base, window_index)
        margin = np.abs(base[:, 1] - base[:, 0])
        for mode in modes:
            if mode == "fp32":
                continue
            call = probs[mode][:, 1] > probs[mode][:, 0]
            flipped = call != base_call
            window_flips = int((_window_calls(probs[mode], window_index) != base_window).sum())
            results.append({
                "data": fasta.name, "chunk": chunk, "mode": mode, "frames": len(ids), "frames_sampled": bool(max_frames and len(ids) == max_frames), "windows": int(window_index.max() + 1),
                "frame_flips": int(flipped.sum()), "frame_flip_rate": round(float(flipped.mean()), 6),
                "window_flips": window_flips,
                "max_tie_distance_of_flips": round(float(margin[flipped].max()), 5) if flipped.any() else None,
                "max_abs_prob_diff": round(float(np.abs(probs[mode] - base).max()), 6),
            })
    return results


def _window_calls(probs: np.ndarray, window_index: np.ndarray) -> np.ndarray:
    """Is_Virus per window: largest score2 >= largest score1 over its frames (the original's rule)."""
    n = int(window_index.max()) + 1
    best1, best2 = np.full(n, -1.0), np.full(n, -1.0)
    np.maximum.at(best1, window_index, probs[:, 0])
    np.maximum.at(best2, window_index, probs[:, 1])
    return best2 >= best1


def real_size_cosines(kind: str, modes: list[str], frames: list[str], esm_shape: str, corpus: list[str] = ()) -> list[dict]:
    """Mean embeddings of a random-weight encoder of the real shape, each mode against fp32."""
    from virnucpro.bench import train_dna_tokenizer
    from virnucpro.device import PRECISIONS
    from virnucpro.embed import Embedder
    from virnucpro.models.dnabert import DnaBert, DnaBertConfig, DnaTokenizer
    from virnucpro.models.esm import PAD, Esm2, EsmConfig, tokenize_proteins
    from virnucpro.models.layers import LoadedEncoder, apply_precision

    torch.manual_seed(0)
    if kind == "dna":
        config = DnaBertConfig(4096, 768, 12, 12, 3072, 2, 1e-12)
        with tempfile.TemporaryDirectory() as tmp:
            # BPE trained on all the data set's frames (training on the few measured ones would learn them whole)
            tokenizer = DnaTokenizer(train_dna_tokenizer(list(corpus) or frames, 4096, Path(tmp)), 4096)
        master = DnaBert(config).eval()
        tokens, pad, skip, dim, shape = tokenizer(["x"] * len(frames), frames), tokenizer.pad_id, (0, 0), 768, "DNABERT-S 768x12"
    else:
        layers, width, heads = ESM_SHAPES[esm_shape]
        master = Esm2(EsmConfig(layers=layers, embed_dim=width, ffn_dim=4 * width, heads=heads, token_dropout=True)).eval()
        tokens, pad, skip, dim, shape = tokenize_proteins(["x"] * len(frames), frames), PAD, (1, 1), width, f"ESM-2 {esm_shape} {width}x{layers}"
    state = master.state_dict()
    results, base = [], None
    for mode in modes:
        module = type(master)(master.config, "reference" if mode == "tf32" else "sdpa")
        module.load_state_dict(state)
        module = apply_precision(module, torch.device("cpu"), PRECISIONS["fp32" if mode == "tf32" else mode])
        if kind == "protein":
            for layer in module.layers:  # rotary frequencies stay fp32, as the loader keeps them
                layer.self_attn.rot_emb.inv_freq = layer.self_attn.rot_emb.inv_freq.float()
            module.fuse()
        enc = LoadedEncoder(shape, "random", dim, module, None, pad, skip)  # type: ignore[arg-type]
        embedder = Embedder(kind, enc, torch.device("cpu"), PRECISIONS["fp32" if mode == "tf32" else mode])
        start = time.perf_counter()
        out = _embed(embedder, tokens, mode, tokens_per_batch=2048)
        print(f"{shape} {mode}: {time.perf_counter() - start:.1f}s", file=sys.stderr)
        del module, embedder, enc
        if base is None:
            base = out
            continue
        cos = (out * base).sum(1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(base, axis=1))
        results.append({"model": shape, "mode": mode, "sequences": len(frames),
                        "mean_tokens": round(float(np.mean([len(t) for t in tokens])), 1),
                        "min_cos": round(float(cos.min()), 6), "mean_cos": round(float(cos.mean()), 6),
                        "max_abs_diff": round(float(np.abs(out - base).max()), 5)})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--modes", nargs="+", default=list(DEFAULT_MODES), choices=MODES)
    parser.add_argument("--data", nargs="+", type=Path, default=[REALDATA / "virus_3kb.fa", REALDATA / "host_3kb.fa"])
    parser.add_argument("--chunks", nargs="+", type=int, default=[500, 300])
    parser.add_argument("--real-dna", type=int, default=32, help="frames for the DNABERT-S real-size cosine (0: skip)")
    parser.add_argument("--real-protein", type=int, default=8, help="proteins for the ESM-2 real-size cosine (0: skip)")
    parser.add_argument("--esm-shape", default="650M", choices=sorted(ESM_SHAPES))
    parser.add_argument("--skip-flips", action="store_true")
    parser.add_argument("--max-frames", type=int, default=None, help="random sample of frames per data set (default: all)")
    args = parser.parse_args(argv)
    modes = ["fp32"] + [m for m in args.modes if m != "fp32"]
    torch.set_num_threads(torch.get_num_threads())
    report: dict = {"hardware": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                                 "torch": torch.__version__, "python": platform.python_version()},
                    "tf32": "emulated (inputs of every matmul rounded to TF32, fp32 accumulation)"}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_flips:
            report["flips"] = flips([(d, c) for d in args.data for c in args.chunks], modes, Path(tmp), args.max_frames)
        _, nuc, prot = _frames(args.data[0], 500, Path(tmp))
    rng = np.random.default_rng(0)
    report["real_size"] = []
    if args.real_dna:
        pick = rng.choice(len(nuc), args.real_dna, replace=False)
        report["real_size"] += real_size_cosines("dna", modes, [nuc[i] for i in pick], args.esm_shape, nuc)
    if args.real_protein:
        pick = rng.choice(len(prot), args.real_protein, replace=False)
        report["real_size"] += real_size_cosines("protein", modes, [prot[i] for i in pick], args.esm_shape)
    from virnucpro.bench import emit_report

    emit_report(report, args.output)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
