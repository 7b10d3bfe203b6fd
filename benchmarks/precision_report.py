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

:func:`real_size_flips` (used by ``scripts/gpu_benchmark.sh``, on a GPU at the real 3B size) adds frame calls at
the real sizes: ONE random-weight encoder per model embeds the frames in every mode and a seeded random classifier
of the original's shape calls them. Every function takes the device; on CUDA ``tf32`` runs on the tensor cores.

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
    "tiny": (2, 64, 4),
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


def _emulated(mode: str, device: torch.device) -> bool:
    """TF32 has no CPU units: there it is emulated (fp32 weights, reference attention, rounded matmul inputs)."""
    return mode == "tf32" and device.type != "cuda"


def _load(kind: str, path: Path, mode: str, device: torch.device = torch.device("cpu"), attention: str = "sdpa"):
    from virnucpro.embed import load_embedder

    emulated = _emulated(mode, device)
    return load_embedder(kind, str(path), device=str(device), precision="fp32" if emulated else mode,
                         attention="reference" if emulated else attention)


def _embed(embedder, tokens: list[np.ndarray], mode: str, tokens_per_batch: int = 4096) -> np.ndarray:
    out = np.zeros((len(tokens), embedder.dim), dtype=np.float32)
    with EmulatedTF32() if _emulated(mode, embedder.device) else nullcontext():
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


def flips(
    datasets: list[tuple[Path, int]], modes: list[str], workdir: Path, max_frames: int | None,
    device: torch.device = torch.device("cpu"),
) -> list[dict]:
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
            dna, esm = _load("dna", MODELS / "dnabert", mode, device), _load("protein", MODELS / "esm2_t2_tiny.pt", mode, device)
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


#: Random-weight encoder shapes for the real-size measurements: DNABERT-S (vocab, width, layers, heads, ffn).
DNA_SHAPES = {"DNABERT-S": (4096, 768, 12, 12, 3072), "tiny": (256, 64, 2, 4, 128)}
#: Hidden width of the original classifier (3328 → 512 → 2); a seeded random one stands in without real weights.
CLASSIFIER_HIDDEN = 512


def _random_master(kind: str, shape: str, device: torch.device, corpus: list[str]):
    """A random-weight fp32 encoder of ``shape`` built on ``device`` (seeded), its tokenizer and display name."""
    from virnucpro.bench.random_models import RANDOM_FULL, RANDOM_TINY, random_dna_tokenizer
    from virnucpro.models.dnabert import DnaBert, DnaBertConfig
    from virnucpro.models.esm import Esm2, EsmConfig, tokenize_proteins

    torch.manual_seed(0)
    if kind == "dna":
        vocab, width, layers, heads, ffn = DNA_SHAPES[shape]
        # BPE trained on all the data set's frames (training on the few measured ones would learn them whole)
        tokenizer, _ = random_dna_tokenizer(RANDOM_TINY if vocab < 4096 else RANDOM_FULL, corpus)
        with device:
            master = DnaBert(DnaBertConfig(vocab, width, layers, heads, ffn, 2, 1e-12)).eval()
        return master, tokenizer, f"{shape} {width}x{layers}"
    layers, width, heads = ESM_SHAPES[shape]
    with device:
        master = Esm2(EsmConfig(layers=layers, embed_dim=width, ffn_dim=4 * width, heads=heads, token_dropout=True)).eval()
    return master, tokenize_proteins, f"ESM-2 {shape} {width}x{layers}"


def real_size_embeddings(
    kind: str, modes: list[str], frames: list[str], shape: str, corpus: list[str] = (), device: torch.device = torch.device("cpu"),
) -> tuple[str, float, dict[str, np.ndarray]]:
    """Mean embeddings of ``frames`` by ONE random-weight encoder of ``shape``, in every mode (the same weights).

    Each mode's module is built as the loaders build one (weights adopted on the meta device, then cast; ESM-2's
    rotary frequencies kept fp32, q/k/v fused). Returns the model's name, the mean tokens per frame and the embeddings.
    """
    from virnucpro.device import PRECISIONS
    from virnucpro.embed import Embedder
    from virnucpro.models.esm import PAD
    from virnucpro.models.layers import LoadedEncoder, apply_precision

    master, tokenize, name = _random_master(kind, shape, device, list(corpus) or frames)
    state = master.state_dict()
    tokens = tokenize(["x"] * len(frames), frames)
    pad, skip = (tokenize.pad_id, (0, 0)) if kind == "dna" else (PAD, (1, 1))
    out: dict[str, np.ndarray] = {}
    for mode in modes:
        emulated = _emulated(mode, device)
        with torch.device("meta"):
            module = type(master)(master.config, "reference" if emulated else "sdpa")
        module.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True, assign=True)
        precision = PRECISIONS["fp32" if emulated else mode]
        module = apply_precision(module, device, precision)
        if kind == "protein":
            for layer in module.layers:  # rotary frequencies stay fp32, as the loader keeps them
                layer.self_attn.rot_emb.inv_freq = layer.self_attn.rot_emb.inv_freq.float()
            module.fuse()
        embedder = Embedder(kind, LoadedEncoder(name, "random", module.config.hidden_size if kind == "dna" else module.config.embed_dim,
                                                module, None, pad, skip), device, precision)  # type: ignore[arg-type]
        start = time.perf_counter()
        out[mode] = _embed(embedder, tokens, mode, tokens_per_batch=2048 if device.type != "cuda" else 32768)
        print(f"{name} {mode}: {time.perf_counter() - start:.1f}s", file=sys.stderr)
        del module, embedder
        if device.type == "cuda":
            torch.cuda.empty_cache()
    del master, state
    return name, float(np.mean([len(t) for t in tokens])), out


def _cosines(name: str, mean_tokens: float, embeddings: dict[str, np.ndarray]) -> list[dict]:
    """Min/mean cosine and max |diff| of each mode's embeddings against fp32's."""
    base, results = embeddings["fp32"], []
    for mode, values in embeddings.items():
        if mode == "fp32":
            continue
        cos = (values * base).sum(1) / (np.linalg.norm(values, axis=1) * np.linalg.norm(base, axis=1)).clip(1e-12)
        results.append({"model": name, "mode": mode, "sequences": len(base), "mean_tokens": round(mean_tokens, 1),
                        "min_cos": round(float(cos.min()), 6), "mean_cos": round(float(cos.mean()), 6),
                        "max_abs_diff": round(float(np.abs(values - base).max()), 5)})
    return results


def real_size_cosines(kind: str, modes: list[str], frames: list[str], esm_shape: str, corpus: list[str] = (),
                      device: torch.device = torch.device("cpu"), dna_shape: str = "DNABERT-S") -> list[dict]:
    """Mean embeddings of a random-weight encoder of the real shape, each mode against fp32."""
    shape = dna_shape if kind == "dna" else esm_shape
    return _cosines(*real_size_embeddings(kind, modes, frames, shape, corpus, device))


def real_size_flips(
    modes: list[str], nuc: list[str], prot: list[str], corpus: list[str], dna_shape: str = "DNABERT-S",
    esm_shape: str = "3B", device: torch.device = torch.device("cpu"),
) -> dict:
    """Frame calls at the real model sizes: random-weight DNABERT-S and ESM-2 embed the same frames in every mode, a
    seeded random classifier of the original's shape (768 + width → 512 → 2) calls them; flips against fp32.

    Random weights are not trained weights: the margins, and so the flip rates, are those of a random classifier on
    random-model features. What this measures is how far each mode moves the numbers at the real depth and width.
    """
    from virnucpro.models.classifier import MLPClassifier
    from virnucpro.predict import score_features

    dna_name, dna_tokens, dna = real_size_embeddings("dna", modes, nuc, dna_shape, corpus, device)
    esm_name, esm_tokens, esm = real_size_embeddings("protein", modes, prot, esm_shape, (), device)
    torch.manual_seed(0)
    width = dna["fp32"].shape[1] + esm["fp32"].shape[1]
    classifier = MLPClassifier(width, CLASSIFIER_HIDDEN).eval()
    probs = {mode: score_features(classifier, np.concatenate([dna[mode], esm[mode]], axis=1)) for mode in modes}
    base = probs["fp32"]
    base_call, margin = base[:, 1] > base[:, 0], np.abs(base[:, 1] - base[:, 0])
    calls = []
    for mode in modes[1:]:
        flipped = (probs[mode][:, 1] > probs[mode][:, 0]) != base_call
        calls.append({"mode": mode, "frames": len(nuc), "frame_flips": int(flipped.sum()),
                      "frame_flip_rate": round(float(flipped.mean()), 6),
                      "max_tie_distance_of_flips": round(float(margin[flipped].max()), 5) if flipped.any() else None,
                      "max_abs_prob_diff": round(float(np.abs(probs[mode] - base).max()), 6)})
    return {"models": [dna_name, esm_name], "classifier": f"random {width}->{CLASSIFIER_HIDDEN}->2 (seeded)",
            "tf32": "emulated" if device.type != "cuda" else "tensor cores", "calls": calls,
            "cosines": _cosines(dna_name, dna_tokens, dna) + _cosines(esm_name, esm_tokens, esm)}


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
