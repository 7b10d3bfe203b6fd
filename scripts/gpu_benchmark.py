"""The whole GPU measurement of issue 10 in one command (see scripts/gpu_benchmark.sh and docs/benchmarks.md).

Writes, under ``--out`` (default ``$OUT``, else ``./gpu-benchmark``):

* ``host_only.json``   — ``virnucpro benchmark --host-only``: host ceiling per stage (1 and all workers), peak RSS;
* ``embed.json``       — ``virnucpro benchmark``: DNABERT-S and ESM-2 (3B) forward-only and end-to-end tokens/s,
  MFU against the datasheet peak, on 500 bp synthetic reads;
* ``agreement.json``   — bf16 vs fp32: (a) frame calls and scores of ``virnucpro run`` on the real reads shipped in
  the repository (tests/data/reference, tiny reference models), (b) embedding cosine at the real model sizes
  (random weights, the same weights cast to bf16);
* ``prepare_workers.json`` — ``benchmarks/prepare_speed.py --cases workers`` (issue 11): ``virnucpro prepare`` with 1
  and 2 workers on 200,000 real-like 500 bp reads, against the ideal 2-way split; the GPU host's many cores measure
  what the 2-core development VM cannot (its two vCPUs do not run two processes at full speed);
* ``summary.json``     — the headline numbers of these files.

``--smoke`` runs the same steps on CPU with tiny models and a few reads (the test suite does, so this cannot rot).
Real weights are used when ``--dnabert``/``--esm`` point to them; otherwise random weights of the real sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REF = REPO / "tests" / "data" / "reference"


def _virnucpro(*argv: str) -> None:
    command = [sys.executable, "-m", "virnucpro", *argv]
    print("+", " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True)


def host_only(out: Path, args: argparse.Namespace) -> dict:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = sorted({1, min(8, cores)})
    path = out / "host_only.json"
    _virnucpro("benchmark", "--host-only", "--workers", *map(str, workers), "--reads", str(args.host_reads),
               "--read-lengths", "500", "--stages", "dna", "protein", "--device", args.device,
               "--dnabert", args.dnabert_host, "--esm", args.esm_host, "--output", str(path), "-q")
    return json.loads(path.read_text())


def embed(out: Path, args: argparse.Namespace) -> dict:
    path = out / "embed.json"
    extra = ["--peak-tflops", str(args.peak_tflops)] if args.peak_tflops else []
    _virnucpro("benchmark", "--reads", str(args.reads), "--read-lengths", "500", "--stages", "dna", "protein",
               "--device", args.device, "--precision", args.precision, "--dnabert", args.dnabert, "--esm", args.esm,
               "--output", str(path), "-q", *extra)
    return json.loads(path.read_text())


def prepare_workers(out: Path, args: argparse.Namespace) -> dict:
    realdata = Path("/work/shared/realdata")  # sampled in place where present, else the reads shipped in the repository
    path = out / "prepare_workers.json"
    command = [sys.executable, str(REPO / "benchmarks" / "prepare_speed.py"), "--cases", "workers",
               "--big-reads", str(args.big_reads), "--repeats", str(args.repeats),
               "--realdata", str(realdata if realdata.is_dir() else REF / "input.fa"), "--output", str(path)]
    print("+", " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True)
    return json.loads(path.read_text())


def _calls(path: Path) -> dict[str, tuple[str, float]]:
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]
    return {r[0]: (r[1], float(r[3])) for r in rows}


def agreement(out: Path, args: argparse.Namespace) -> dict:
    """bf16 vs fp32: calls on real reads (reference models), embedding cosine at real sizes (random weights)."""
    import numpy as np
    import torch

    from virnucpro.bench import get_embedder, run_prepare, write_synthetic_fasta
    from virnucpro.device import resolve_device, resolve_precision

    report: dict = {"device": args.device}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for precision in ("fp32", "bf16"):
            outdir = Path(tmp) / precision
            _virnucpro("run", str(REF / "input.fa"), "--outdir", str(outdir), "--chunk-length", "500",
                       "--dnabert", str(REF / "models" / "dnabert"), "--esm", str(REF / "models" / "esm2_t2_tiny.pt"),
                       "--classifier", str(REF / "models" / "classifier.pth"), "--device", args.device,
                       "--precision", precision, "-q")
            runs[precision] = _calls(outdir / "prediction_results.txt")
        frames = sorted(set(runs["fp32"]) & set(runs["bf16"]))
        flips = [f for f in frames if runs["fp32"][f][0] != runs["bf16"][f][0]]
        report["reference_reads"] = {
            "input": "tests/data/reference/input.fa", "models": "tests/data/reference/models (tiny)",
            "frames": len(frames), "frames_only_in_one": len(set(runs["fp32"]) ^ set(runs["bf16"])),
            "label_flips": len(flips), "flip_rate": round(len(flips) / max(1, len(frames)), 6),
            "max_abs_virus_score_diff": round(max((abs(runs["fp32"][f][1] - runs["bf16"][f][1]) for f in frames), default=0.0), 6),
        }

        device = resolve_device(args.device)
        data = run_prepare("synthetic-500bp", [write_synthetic_fasta(Path(tmp) / "s.fa", args.cos_reads, 500)], 500, Path(tmp))
        sizes = {}
        for kind, spec in (("dna", args.dnabert), ("protein", args.esm)):
            torch.manual_seed(0)
            corpus = data.sequences("dna", limit=2000) if kind == "dna" else ()
            embedder = get_embedder(kind, spec, device, resolve_precision("fp32", device), dna_sequences=corpus)
            sequences = data.sequences(kind)
            tokens = embedder.encoder.tokenize([str(i) for i in range(len(sequences))], sequences)
            fp32 = _means(embedder, tokens)
            module = embedder.encoder.module
            rotary = {n: b.clone() for n, b in module.named_buffers() if n.endswith("inv_freq")}
            module.to(torch.bfloat16)  # the same weights, rounded to bf16 (pooling stays fp32)
            for name, buffer in rotary.items():  # as the loader does: rotary frequencies stay fp32
                parent, _, leaf = name.rpartition(".")
                setattr(module.get_submodule(parent), leaf, buffer)
            bf16 = _means(embedder, tokens)
            cos = (fp32 * bf16).sum(1) / (np.linalg.norm(fp32, axis=1) * np.linalg.norm(bf16, axis=1)).clip(1e-12)
            sizes[kind] = {"model": embedder.name, "sequences": len(tokens), "min_cos": round(float(cos.min()), 6),
                           "mean_cos": round(float(cos.mean()), 6)}
            del embedder
            if device.type == "cuda":
                torch.cuda.empty_cache()
        report["real_size_random_weights"] = sizes
    path = out / "agreement.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _means(embedder, tokens):
    import numpy as np

    rows = np.zeros((len(tokens), embedder.dim), dtype=np.float32)
    for index, values in embedder.embed_tokens(tokens, embedder.default_tokens_per_batch()):
        rows[index] = values
    return rows.astype(np.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu-benchmark"))
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny models, few reads: checks the script works")
    parser.add_argument("--dnabert", default=None, help="DNABERT-S folder (default: random weights, real size)")
    parser.add_argument("--esm", default=None, help="ESM-2 .pt (default: random weights of ESM-2 3B)")
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args(argv)
    if args.smoke:
        args.device, args.precision, args.reads, args.host_reads, args.cos_reads = "cpu", "fp32", 8, 60, 6
        args.big_reads, args.repeats = 300, 1
        args.dnabert, args.esm = args.dnabert or "random-tiny", args.esm or "random-tiny"
        args.dnabert_host, args.esm_host = "random-full", "random-3B"
    else:
        args.device, args.precision, args.reads, args.host_reads, args.cos_reads = "cuda", "bf16", 20000, 200000, 500
        args.big_reads, args.repeats = 200000, 5
        args.dnabert, args.esm = args.dnabert or "random-full", args.esm or "random-3B"
        args.dnabert_host, args.esm_host = args.dnabert, args.esm
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    host = host_only(args.out, args)
    model = embed(args.out, args)
    agree = agreement(args.out, args)
    workers = prepare_workers(args.out, args)["cases"][0]
    summary = {
        "smoke": args.smoke,
        "hardware": model["hardware"],
        "seconds": round(time.time() - start, 1),
        "host_only": [{k: r[k] for k in ("stage", "workers", "host_seq_per_s", "peak_rss_bytes")} for r in host["runs"]],
        "embed": [{k: r.get(k) for k in ("stage", "model", "precision", "forward_tokens_per_s", "e2e_tokens_per_s",
                                         "e2e_seq_per_s", "mfu", "e2e_mfu", "peak_tflops")} for r in model["runs"]],
        "peak_tflops_source": model["peak_tflops_source"],
        "agreement": agree,
        "prepare_workers": {k: workers[k] for k in ("reads", "one_worker", "two_workers", "speedup_2_vs_1", "ideal_2_vs_1",
                                                    "efficiency", "medians", "identical_outputs")},
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
