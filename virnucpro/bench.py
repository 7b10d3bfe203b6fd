"""``virnucpro benchmark`` and ``virnucpro profile``: stage throughput and the token budget per forward pass.

Both measure the production code paths (``prepare``, :meth:`Embedder.embed_fasta`, :meth:`Embedder.embed_tokens`,
:func:`plan_batches`) rather than re-implementations, so a number here is what the pipeline gets: each embedding run
reports forward-only throughput (the device loop over pre-tokenised input) next to end-to-end throughput (FASTA →
HDF5, tokenisation and writing included), and MFU against the GPU's datasheet peak (a repeated matmul on CPU), never
above 1. ``--host-only`` replaces the forward pass by a no-op to give the host's ceiling and peak RSS. Models are
either real local files or ``random-*`` stand-ins built directly on the device: speed depends on shapes and dtype,
not on weight values, so a GPU can be benchmarked at full model size without downloading 6 GB of weights.

Synthetic reads matter: random DNA has almost no stop-free frame of 100+ codons, so a benchmark on it would embed
nothing. Each synthetic read carries one stop-free reading frame on a random strand and offset, which gives about
one frame per window, in the band of real data (0.5–1.2, see ``shared/realdata/README.md``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from virnucpro import __version__
from virnucpro.atomic import atomic_text
from virnucpro.device import Precision, as_precision, peak_memory, precision_name, resolve_device, resolve_precision
from virnucpro.embed import Embedder, load_embedder, plan_batches
from virnucpro.models.layers import LoadedEncoder, apply_precision
from virnucpro.errors import InputError
from virnucpro.fasta import read_fasta, write_record
from virnucpro.frames import CODON_TABLE, reverse_complement
from virnucpro.prepare import prepare

log = logging.getLogger("virnucpro")

RANDOM_TINY = "random-tiny"
RANDOM_FULL = "random-full"
_RANDOM_ALIASES = {"random-3b": RANDOM_FULL, "random-full": RANDOM_FULL, "random-tiny": RANDOM_TINY}
#: BPE special tokens in the order DNABERT-S uses (ids 0-4).
_DNA_SPECIALS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
_SENSE_CODONS = np.array(sorted(c for c, aa in CODON_TABLE.items() if aa != "*"))
#: Realistic token lengths for the profile curve: a 500 bp frame is ~100 DNABERT-S BPE tokens and ~166 aa + 2.
_PROFILE_LENGTHS = {"dna": 100, "protein": 162}
_CPU_PROFILE_CAP = 8192


# --------------------------------------------------------------------------------------------------------------------
# Synthetic reads


def synthetic_read(length: int, rng: np.random.Generator) -> str:
    """Random DNA of ``length`` bp carrying one stop-free reading frame (random strand, offset 0-2) end to end.

    Every window of the read then keeps that frame, whatever its start, so frames/window is ~1 (real data: 0.5-1.2);
    other frames are random and almost always hold a stop.
    """
    offset = int(rng.integers(0, 3))
    n_codons = -(-(length - offset) // 3)
    lead = "".join(rng.choice(list("ACGT"), size=offset))
    coding = (lead + "".join(rng.choice(_SENSE_CODONS, size=n_codons)))[:length]
    return coding if rng.random() < 0.5 else reverse_complement(coding)


def write_synthetic_fasta(path: Path, n_reads: int, length: int, seed: int = 0) -> Path:
    """``n_reads`` synthetic reads of ``length`` bp (ids ``syn{length}_{i}``) into ``path``; deterministic by seed."""
    rng = np.random.default_rng(seed + length)
    with open(path, "w", encoding="ascii") as out:
        for i in range(n_reads):
            write_record(out, f"syn{length}_{i}", synthetic_read(length, rng), 60)
    return path


def chunk_for_read_length(read_length: int) -> int:
    """The chunk length a run would choose: 300 for short reads (≤300 bp), else 500."""
    return 300 if read_length <= 300 else 500


# --------------------------------------------------------------------------------------------------------------------
# Random models (speed only: built on the device in the run dtype, no weights read)


def _dna_config(size: str, vocab_size: int) -> Any:
    from virnucpro.models.dnabert import DnaBertConfig

    if size == RANDOM_TINY:
        return DnaBertConfig(vocab_size, 64, 2, 4, 128, 2, 1e-12)
    return DnaBertConfig(vocab_size, 768, 12, 12, 3072, 2, 1e-12)  # DNABERT-S


def _esm_config(size: str) -> Any:
    from virnucpro.models.esm import EsmConfig

    if size == RANDOM_TINY:
        return EsmConfig(layers=2, embed_dim=64, ffn_dim=256, heads=4, token_dropout=True)
    return EsmConfig(layers=36, embed_dim=2560, ffn_dim=10240, heads=40, token_dropout=True)  # ESM-2 3B


def _build_on(build: Any, device: torch.device, dtype: Precision | torch.dtype) -> torch.nn.Module:
    """Construct directly on ``device`` in ``dtype`` (a 3B model built in fp32 on the host first would take minutes)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(as_precision(dtype).dtype)
    try:
        with device:
            module = build()
    finally:
        torch.set_default_dtype(previous)
    return apply_precision(module, device, dtype)


def train_dna_tokenizer(sequences: Iterable[str], vocab_size: int, folder: Path) -> Path:
    """A DNABERT-style BPE tokenizer ([UNK] [CLS] [SEP] [PAD] [MASK] = 0-4, [CLS] x [SEP]) trained on ``sequences``.

    Random DNABERT models have no tokenizer; training one on the benchmark's own frames gives realistic token counts
    (the real DNABERT-S vocabulary is also a 4096-token BPE over DNA). Saved as ``tokenizer.json`` so the production
    :class:`~virnucpro.models.dnabert.DnaTokenizer` reads it.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()  # as DNABERT-S's own tokenizer.json
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=_DNA_SPECIALS, show_progress=False)
    tokenizer.train_from_iterator((s.upper() for s in sequences), trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    path = folder / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def random_embedder(
    kind: str, size: str, device: torch.device, dtype: torch.dtype, attention: str, dna_sequences: Sequence[str] = ()
) -> Embedder:
    """An :class:`Embedder` around a randomly initialised DNABERT-S / ESM-2 of the named size."""
    if kind == "dna":
        from virnucpro.models.dnabert import DnaBert, DnaTokenizer

        vocab = 256 if size == RANDOM_TINY else 4096
        config = _dna_config(size, vocab)
        with tempfile.TemporaryDirectory() as tmp:
            corpus = list(dna_sequences) or [synthetic_read(500, np.random.default_rng(i)) for i in range(200)]
            tokenizer = DnaTokenizer(train_dna_tokenizer(corpus, vocab, Path(tmp)), vocab)
        module = _build_on(lambda: DnaBert(config, attention), device, dtype)
        encoder = LoadedEncoder(size, "random", config.hidden_size, module, tokenizer, tokenizer.pad_id, (0, 0),
                                {"tokenizer": "bpe-trained-on-input"})
    else:
        from virnucpro.models.esm import PAD, Esm2, tokenize_proteins

        config = _esm_config(size)
        module = _build_on(lambda: Esm2(config, attention), device, dtype)
        encoder = LoadedEncoder(size, "random", config.embed_dim, module, tokenize_proteins, PAD, (1, 1), {})
    return Embedder(kind, encoder, device, dtype)


def get_embedder(
    kind: str, spec: str | None, device: torch.device, dtype: Precision | torch.dtype, attention: str = "sdpa",
    dna_sequences: Sequence[str] = (), **engine: Any,
) -> Embedder:
    """``random-tiny`` / ``random-full`` (alias ``random-3B``) or a local model path; default by device type.

    ``engine`` passes pipeline options (``workers``, ``chunk_size``, ``in_flight``) to the :class:`Embedder`.
    """
    spec = spec or (RANDOM_FULL if device.type == "cuda" else RANDOM_TINY)
    size = _RANDOM_ALIASES.get(spec.lower())
    if size is not None:
        embedder = random_embedder(kind, size, device, dtype, attention, dna_sequences)
        for key, value in engine.items():
            setattr(embedder, key, value)
        return embedder
    return load_embedder(kind, spec, str(device), precision_name(dtype), attention, **engine)


class _NoModel(torch.nn.Module):
    """Stands in for the encoder in host-only mode: :meth:`Embedder.step` never calls it."""

    attention = "none"

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # pragma: no cover - never called
        raise RuntimeError("host-only embedder has no model")


def host_only_embedder(
    kind: str, spec: str | None, device: torch.device, dtype: Precision | torch.dtype,
    dna_sequences: Sequence[str] = (), workers: int | None = None,
) -> Embedder:
    """The production :class:`Embedder` with its forward pass replaced by a no-op (``host_only``).

    Everything else is real: the model's tokenizer (a random model's trained one), its width (rows written are that
    wide) and the whole engine. No weights are built, so ``random-full`` (the default here) costs nothing.
    """
    spec = spec or RANDOM_FULL
    size = _RANDOM_ALIASES.get(spec.lower())
    if kind == "dna":
        from virnucpro.models.dnabert import DnaBertConfig, DnaTokenizer, resolve_folder

        if size is not None:
            vocab = 256 if size == RANDOM_TINY else 4096
            dim = _dna_config(size, vocab).hidden_size
            with tempfile.TemporaryDirectory() as tmp:
                corpus = list(dna_sequences) or [synthetic_read(500, np.random.default_rng(i)) for i in range(200)]
                tokenizer = DnaTokenizer(train_dna_tokenizer(corpus, vocab, Path(tmp)), vocab)
        else:
            folder = resolve_folder(spec)
            config = DnaBertConfig.from_json(folder / "config.json")
            tokenizer, dim = DnaTokenizer(folder / "tokenizer.json", config.vocab_size), config.hidden_size
        encoder = LoadedEncoder(size or spec, "host-only", dim, _NoModel(), tokenizer, tokenizer.pad_id, (0, 0), {})
    else:
        from virnucpro.models.esm import PAD, tokenize_proteins

        dim = _esm_config(size).embed_dim if size is not None else _esm_width(spec)
        encoder = LoadedEncoder(size or spec, "host-only", dim, _NoModel(), tokenize_proteins, PAD, (1, 1), {})
    return Embedder(kind, encoder, device, dtype, workers=workers, host_only=True)


def _esm_width(spec: str) -> int:
    """Embedding width of an ESM-2 checkpoint, read through the production loader's own checks (no model built)."""
    from virnucpro.models import esm
    from virnucpro.models.checkpoint import load_esm_pickle

    path = esm.resolve_checkpoint(spec)
    return int(esm.read_config(load_esm_pickle(path), str(path)).embed_dim)


# --------------------------------------------------------------------------------------------------------------------
# Arithmetic: FLOPs, peak, hardware


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
    import re

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
    _sync(device)
    best = 0.0
    for _ in range(3):
        reps, start = 0, time.perf_counter()
        while True:
            a @ b
            reps += 1
            if reps % 4 == 0 or device.type != "cuda":
                _sync(device)
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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (host memory, whatever the device)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def hardware(device: torch.device) -> dict[str, Any]:
    """What a reader needs to compare numbers across machines."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_capability=f"{props.major}.{props.minor}", gpu_memory_bytes=int(props.total_memory),
                    cuda=torch.version.cuda)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# --------------------------------------------------------------------------------------------------------------------
# Stages


@dataclass
class Dataset:
    """One benchmark input after the prepare stage: its shard files and the prepare measurement.

    Frames stay on disk: the end-to-end and host-only measurements read them through the engine like a run does,
    so the benchmark's own memory does not grow with the input.
    """

    name: str
    chunk_length: int
    nuc_files: list[Path]
    prot_files: list[Path]
    prepare: dict[str, Any]

    def files(self, kind: str) -> list[Path]:
        return self.nuc_files if kind == "dna" else self.prot_files

    def sequences(self, kind: str, limit: int | None = None) -> list[str]:
        """The frames of ``kind`` (at most ``limit``) read back from the shards."""
        out: list[str] = []
        for path in self.files(kind):
            for record in read_fasta(path):
                if limit is not None and len(out) >= limit:
                    return out
                out.append(record.sequence)
        return out


def run_prepare(name: str, inputs: Sequence[Path], chunk: int, workdir: Path) -> Dataset:
    """Time the production prepare stage (one process = one core); its shards stay in ``workdir`` for the embed stages."""
    outdir = workdir / f"prepare-{len(list(workdir.iterdir()))}"
    start = time.perf_counter()
    manifest = prepare(list(inputs), outdir, chunk, progress=False)
    seconds = time.perf_counter() - start
    counts = manifest["counts"]
    prot_files = [outdir / s["prot"] for s in manifest["shards"]]
    residues = sum(len(r.sequence) for path in prot_files for r in read_fasta(path))
    stats = {
        "stage": "prepare",
        "input": name,
        "chunk_length": chunk,
        "reads": counts["reads"],
        "windows": counts["windows"],
        "frames": counts["frames"],
        "frames_per_window": round(counts["frames"] / max(1, counts["windows"]), 4),
        "mean_protein_aa": round(residues / counts["frames"], 1) if counts["frames"] else 0.0,
        "seconds": round(seconds, 4),
        "reads_per_s_per_core": round(counts["reads"] / seconds, 1) if seconds > 0 else 0.0,
    }
    return Dataset(name, chunk, [outdir / s["nuc"] for s in manifest["shards"]], prot_files, stats)


def embed_fasta_files(embedder: Embedder, files: Sequence[Path], workdir: Path, tokens_per_batch: int | None) -> dict[str, Any]:
    """Run the production :meth:`Embedder.embed_fasta` over ``files`` (FASTA → HDF5, all stages), summed."""
    total: dict[str, Any] = {"sequences": 0, "tokens": 0, "seconds": 0.0, "batches": 0, "padded_tokens": 0, "oom_retries": 0}
    for i, path in enumerate(files):
        out = workdir / f"bench-{embedder.kind}-{i}.h5"
        stats = embedder.embed_fasta(path, out, tokens_per_batch=tokens_per_batch, progress=False)
        out.unlink(missing_ok=True)
        for key in total:
            total[key] += stats.get(key, 0)
    return total


def embed_stage(
    embedder: Embedder, data: Dataset, tokens_per_batch: int | None, peak_tflops: float, workdir: Path
) -> dict[str, Any]:
    """Forward-only throughput (pre-tokenised, device loop only) and end-to-end throughput (FASTA → HDF5).

    Forward-only is what the model and device achieve; end-to-end includes reading, tokenisation and writing, i.e.
    what a run gets. MFU is given for both.
    """
    stage = {"stage": embedder.kind, "mode": "model", "input": data.name, "chunk_length": data.chunk_length,
             "model": embedder.name, "workers": embedder.workers}
    sequences = data.sequences(embedder.kind)
    if not sequences:
        return {**stage, "sequences": 0, "note": "no frames to embed"}
    tpb = tokens_per_batch or embedder.default_tokens_per_batch()
    start = time.perf_counter()
    tokens = embedder.encoder.tokenize([f"s{i}" for i in range(len(sequences))], sequences)
    tokenize_s = time.perf_counter() - start
    del sequences
    lengths = np.array([len(t) for t in tokens], dtype=np.int64)
    embedder.embed_batch([tokens[i] for i in plan_batches(lengths, tpb)[0]])  # warm-up: kernels, allocator, caches
    _sync(embedder.device)
    if embedder.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(embedder.device)
    stats: dict[str, Any] = {}
    start = time.perf_counter()
    for _ in embedder.embed_tokens(tokens, tpb, stats):
        pass
    _sync(embedder.device)
    seconds = time.perf_counter() - start
    forward = throughput(embedder, lengths, stats, seconds, tpb, peak_tflops)
    del tokens
    e2e = embed_fasta_files(embedder, data.files(embedder.kind), workdir, tpb)
    e2e_tokens_per_s = e2e["tokens"] / e2e["seconds"] if e2e["seconds"] > 0 else 0.0
    e2e_mfu, e2e_clamped = mfu(forward["flops_per_token"] * e2e_tokens_per_s / 1e12, peak_tflops)
    return {
        **stage,
        **forward,
        "tokenize_s": round(tokenize_s, 4),
        "e2e_seconds": round(e2e["seconds"], 4),
        "e2e_seq_per_s": round(e2e["sequences"] / e2e["seconds"], 2) if e2e["seconds"] > 0 else 0.0,
        "e2e_tokens_per_s": round(e2e_tokens_per_s, 1),
        "e2e_mfu": round(e2e_mfu, 6) if e2e_mfu is not None else None,
        **({"e2e_mfu_clamped": True} if e2e_clamped else {}),
        "peak_rss_bytes": peak_rss_bytes(),
    }


def host_stage(embedder: Embedder, data: Dataset, tokens_per_batch: int | None, workdir: Path) -> dict[str, Any]:
    """Host ceiling: the production FASTA → HDF5 path with the forward pass a no-op (``--host-only``)."""
    stage = {"stage": embedder.kind, "mode": "host-only", "input": data.name, "chunk_length": data.chunk_length,
             "model": embedder.name, "dim": embedder.dim, "workers": embedder.workers}
    tpb = tokens_per_batch or embedder.default_tokens_per_batch()
    cpu_start = _cpu_seconds()
    total = embed_fasta_files(embedder, data.files(embedder.kind), workdir, tpb)
    cpu = _cpu_seconds() - cpu_start
    seconds = total["seconds"]
    return {
        **stage,
        "sequences": total["sequences"],
        "tokens": total["tokens"],
        "tokens_per_batch": tpb,
        "seconds": round(seconds, 4),
        "host_seq_per_s": round(total["sequences"] / seconds, 1) if seconds > 0 else 0.0,
        "host_tokens_per_s": round(total["tokens"] / seconds, 1) if seconds > 0 else 0.0,
        # CPU time of the whole process over the stage: seq per CPU-second is robust to other load on the machine
        "cpu_seconds": round(cpu, 3),
        "host_seq_per_cpu_s": round(total["sequences"] / cpu, 1) if cpu > 0 else 0.0,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def throughput(
    embedder: Embedder, lengths: np.ndarray, stats: dict[str, Any], seconds: float, tpb: int, peak_tflops: float
) -> dict[str, Any]:
    """Forward-only throughput, padding and model-FLOP utilisation of one timed pass (real tokens count as work)."""
    real, padded = int(lengths.sum()), int(stats.get("padded_tokens", 0))
    params, layers, dim = model_shape(embedder)
    per_token = flops_per_token(params, layers, dim, float(lengths.mean()))
    tokens_per_s = real / seconds if seconds > 0 else 0.0
    achieved = per_token * tokens_per_s / 1e12
    efficiency = real / padded if padded else 1.0
    utilisation, clamped = mfu(achieved, peak_tflops)
    return {
        "sequences": int(len(lengths)),
        "tokens": real,
        "padded_tokens": padded,
        "padding_efficiency": round(efficiency, 4),
        "padding_waste": round(1.0 - efficiency, 4),
        "mean_tokens_per_sequence": round(float(lengths.mean()), 1),
        "batches": int(stats.get("batches", 0)),
        "oom_retries": int(stats.get("oom_retries", 0)),
        "tokens_per_batch": tpb,
        "forward_seconds": round(seconds, 4),
        "forward_tokens_per_s": round(tokens_per_s, 1),
        "forward_seq_per_s": round(len(lengths) / seconds, 2) if seconds > 0 else 0.0,
        "precision": precision_name(embedder.dtype),
        "attention": embedder.attention,
        "peak_memory_bytes": peak_memory(embedder.device),
        "peak_memory_kind": "cuda_max_allocated" if embedder.device.type == "cuda" else "host_rss",
        "non_embedding_params": params,
        "flops_per_token": per_token,
        "achieved_tflops": round(achieved, 6),
        "peak_tflops": round(peak_tflops, 4),
        "mfu": round(utilisation, 6) if utilisation is not None else None,
        **({"mfu_clamped": True} if clamped else {}),
        **({"tokenizer": embedder.encoder.info["tokenizer"]} if "tokenizer" in embedder.encoder.info else {}),
    }


def _summary(run: dict[str, Any]) -> str:
    """One stderr line per stage run."""
    if run["stage"] == "prepare":
        return (f"prepare {run['input']} chunk {run['chunk_length']}: {run['reads_per_s_per_core']:,.0f} reads/s/core, "
                f"{run['frames_per_window']:.2f} frames/window")
    if not run.get("sequences"):
        return f"{run['stage']} {run['input']}: no frames"
    if run["mode"] == "host-only":
        return (f"{run['stage']} {run['input']} host-only ({run['workers']} workers, dim {run['dim']}): "
                f"{run['host_seq_per_s']:,.0f} seq/s, peak RSS {run['peak_rss_bytes'] / 2**20:,.0f} MiB")
    return (f"{run['stage']} {run['input']} ({run['model']}, {run['precision']}, {run['workers']} workers): "
            f"forward {run['forward_tokens_per_s']:,.0f} tokens/s, end to end {run['e2e_seq_per_s']:,.1f} seq/s "
            f"({run['e2e_tokens_per_s']:,.0f} tokens/s), padding efficiency {run['padding_efficiency']:.2f}, "
            f"MFU {run['mfu']:.2%}")


# --------------------------------------------------------------------------------------------------------------------
# benchmark


def benchmark(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """All selected stages over every input; returns the report (``runs`` in stage order)."""
    device = resolve_device(args.device)
    dtype = resolve_precision(args.precision, device)
    host_only = bool(getattr(args, "host_only", False))
    workers_list = list(getattr(args, "workers", None) or [None])
    if any(w is not None and w < 1 for w in workers_list):
        raise InputError(f"--workers must be positive, not {workers_list}")
    # Parallelism comes from the engine's worker threads (one per --workers), not the tokenizer's own pool.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    datasets = _datasets(args, workdir)
    runs: list[dict[str, Any]] = []
    if "prepare" in args.stages:
        runs.extend(_logged(d.prepare) for d in datasets)
    embed_kinds = [k for k in ("dna", "protein") if k in args.stages]
    peak, peak_source = resolve_peak(device, dtype, args.peak_tflops) if embed_kinds and not host_only else (0.0, None)
    for kind, spec, tpb in (("dna", args.dnabert, args.tokens_per_batch_dna), ("protein", args.esm, args.tokens_per_batch_protein)):
        if kind not in embed_kinds:
            continue
        corpus = [s for d in datasets for s in d.sequences("dna", limit=2000)] if kind == "dna" else ()
        for workers in workers_list:
            if host_only:
                embedder = host_only_embedder(kind, spec, device, dtype, corpus, workers)
                runs.extend(_logged(host_stage(embedder, d, tpb, workdir)) for d in datasets)
            else:
                embedder = get_embedder(kind, spec, device, dtype, dna_sequences=corpus, **({"workers": workers} if workers else {}))
                runs.extend(_logged(embed_stage(embedder, d, tpb, peak, workdir)) for d in datasets)
            del embedder
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return {
        "tool_version": __version__,
        "hardware": hardware(device),
        "command": list(getattr(args, "argv", None) or sys.argv),
        "host_only": host_only,
        "peak_tflops_source": peak_source,
        "peak_rss_bytes": peak_rss_bytes(),
        "runs": runs,
    }


def _datasets(args: argparse.Namespace, workdir: Path) -> list[Dataset]:
    """Prepare every FASTA given, or synthetic reads of each read length (chunk chosen by read length)."""
    if args.input:
        out = []
        for path in args.input:
            lengths = [len(r.sequence) for r in read_fasta(path)]
            chunk = chunk_for_read_length(int(np.median(lengths)) if lengths else 500)
            out.append(run_prepare(Path(path).name, [Path(path)], chunk, workdir))
        return out
    out = []
    for length in args.read_lengths:
        fasta = write_synthetic_fasta(workdir / f"synthetic_{length}.fa", args.reads, length)
        out.append(run_prepare(f"synthetic-{length}bp", [fasta], chunk_for_read_length(length), workdir))
    return out


def _logged(run: dict[str, Any]) -> dict[str, Any]:
    print(f"benchmark: {_summary(run)}", file=sys.stderr, flush=True)
    return run


def emit_report(report: dict[str, Any], output: Path | None) -> None:
    """Every benchmark's JSON report: to ``output`` (atomically) when given, else to stdout."""
    text = json.dumps(report, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    with atomic_text(output) as out:
        out.write(text)


def cli_benchmark(args: argparse.Namespace) -> int:
    """``virnucpro benchmark``: JSON report of prepare / DNABERT-S / ESM-2 throughput (or host ceilings)."""
    with tempfile.TemporaryDirectory(prefix="virnucpro-bench-") as tmp:
        report = benchmark(args, Path(tmp))
    emit_report(report, args.output)
    return 0


# --------------------------------------------------------------------------------------------------------------------
# profile


def profile_tokens(kind: str, embedder: Embedder, n_tokens: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Token arrays of realistic length (±10 %) totalling about ``n_tokens``: content does not change speed."""
    mean = _PROFILE_LENGTHS[kind]
    lengths = np.clip(rng.normal(mean, mean * 0.1, size=max(1, n_tokens // mean + 1)), 8, None).astype(int)
    if kind == "protein":
        from virnucpro.models.esm import CLS, EOS

        return [np.concatenate(([CLS], rng.integers(4, 24, n - 2), [EOS])).astype(np.int32) for n in lengths]
    vocab = embedder.encoder.module.config.vocab_size
    return [np.concatenate(([1], rng.integers(5, vocab, n - 2), [2])).astype(np.int32) for n in lengths]


def curve_point(embedder: Embedder, kind: str, tpb: int, repeats: int = 3) -> dict[str, Any]:
    """Throughput of ``repeats`` full batches of ``tpb`` padded tokens after one warm-up; OOM propagates."""
    tokens = profile_tokens(kind, embedder, tpb, np.random.default_rng(tpb))
    lengths = np.array([len(t) for t in tokens])
    batch = [tokens[i] for i in plan_batches(lengths, tpb)[0]]
    if embedder.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(embedder.device)
    embedder.embed_batch(batch)
    _sync(embedder.device)
    start = time.perf_counter()
    for _ in range(repeats):
        embedder.embed_batch(batch)
    _sync(embedder.device)
    seconds = time.perf_counter() - start
    real = sum(len(t) for t in batch) * repeats
    return {"tokens_per_batch": tpb, "sequences_per_batch": len(batch), "tokens_per_s": round(real / seconds, 1),
            "peak_memory_bytes": peak_memory(embedder.device)}


def profile_model(embedder: Embedder, kind: str, max_tokens: int) -> dict[str, Any]:
    """Double the batch from 1024 tokens until OOM or the cap; choose what the pipeline should use.

    CUDA: the largest batch whose peak memory left ≥10 % of the GPU free (real shards vary in length). CPU: no OOM to
    find, so the best throughput within a small cap (bigger batches only thrash caches there).
    """
    cuda = embedder.device.type == "cuda"
    cap = max_tokens if cuda else min(max_tokens, _CPU_PROFILE_CAP)
    curve: list[dict[str, Any]] = []
    oom_at = None
    tpb = 1024
    while tpb <= cap:
        try:
            curve.append(curve_point(embedder, kind, tpb))
        except torch.OutOfMemoryError:
            oom_at = tpb
            torch.cuda.empty_cache()
            break
        print(f"profile {kind}: {tpb} tokens/batch → {curve[-1]['tokens_per_s']:,.0f} tokens/s", file=sys.stderr, flush=True)
        tpb *= 2
    return {"tokens_per_batch": choose_tokens_per_batch(curve, cuda, embedder.device), "oom_at": oom_at,
            "model": embedder.name, "precision": precision_name(embedder.dtype), "curve": curve}


def choose_tokens_per_batch(curve: list[dict[str, Any]], cuda: bool, device: torch.device) -> int:
    """The pipeline's batch size from a measured curve (see :func:`profile_model`); 1024 if nothing fit."""
    if not curve:
        return 1024
    if not cuda:
        return int(max(curve, key=lambda p: p["tokens_per_s"])["tokens_per_batch"])
    budget = 0.9 * torch.cuda.get_device_properties(device).total_memory
    fitting = [p for p in curve if p["peak_memory_bytes"] <= budget] or curve[:1]
    return int(fitting[-1]["tokens_per_batch"])


def cli_profile(args: argparse.Namespace) -> int:
    """``virnucpro profile``: per-model tokens_per_batch (read by the pipeline's PROFILE process) and the curve."""
    device = resolve_device(args.device)
    dtype = resolve_precision(args.precision, device)
    report: dict[str, Any] = {"tool_version": __version__, "device": str(device), "hardware": hardware(device),
                              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    for kind, spec in (("dna", args.dnabert), ("protein", args.esm)):
        embedder = get_embedder(kind, spec, device, dtype)
        report[kind] = profile_model(embedder, kind, args.max_tokens)
        del embedder
        if device.type == "cuda":
            torch.cuda.empty_cache()
    emit_report(report, args.output)
    return 0


__all__ = ["benchmark", "cli_benchmark", "cli_profile", "synthetic_read", "train_dna_tokenizer", "write_synthetic_fasta"]
