"""The whole GPU measurement in one command (run through scripts/gpu_benchmark.sh; see docs/benchmarks.md).

Writes ONE JSON, ``gpu_benchmark.json`` under ``--out`` (default ``$OUT``, else ``./gpu-benchmark``):

* ``hardware``, ``precision``, ``stage_seconds`` (set-up and every step below; they add up to ``seconds``);
* ``models`` — per model (DNABERT-S and ESM-2 3B at real size with random weights, or the files given): forward-only
  and end-to-end tokens/s, MFU against the datasheet peak, ``device_busy`` (share of the end-to-end run the device
  spent in forward passes: the host is the bottleneck when it is low), peak GPU memory, padding;
* ``host_only`` — ``virnucpro benchmark --host-only`` with 1 and all (≤ 8) workers: the host's ceiling per model;
* ``peak_gpu_memory_bytes``, ``peak_host_rss_bytes`` — the largest of every step;
* ``precision`` — bf16 / bf16-mixed / tf32 against fp32: frame flips at the real model sizes (random weights and a
  random classifier of the original's shape) and with the trained tiny reference models and classifier;
* ``prepare_workers`` — ``benchmarks/prepare_speed.py --cases workers``: prepare with 1 and 2 workers.

The input is the repository's own: ``benchmarks/data/synthetic_genomes.fa.gz`` (simulated genomes whose frame
statistics match real data; ``benchmarks/synthetic_genomes.py``), sampled into 500 bp reads. Nothing outside the
repository is read. ``--smoke`` runs every step on the CPU with the bundled tiny models
(``tests/data/reference/models``) and a few hundred reads; ``tests/test_gpu_script.py`` runs it, so it cannot rot.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "tests" / "data" / "reference" / "models"
GENOMES = REPO / "benchmarks" / "data" / "synthetic_genomes.fa.gz"
MODES = ["fp32", "tf32", "bf16", "bf16-mixed"]
#: What each mode measures: (GPU run, --smoke run).
SIZES = {
    "reads": (20_000, 120), "host_reads": (200_000, 300), "precision_frames": (1_000, 24), "reference_frames": (4_000, 60),
    "prepare_reads": (200_000, 300), "prepare_repeats": (3, 1),
}

sys.path.insert(0, str(REPO / "benchmarks"))  # the benchmark scripts' functions (not a package)


def _virnucpro(*argv: str) -> dict[str, Any]:
    """Run ``virnucpro`` as a user does (a fresh process of this interpreter); its JSON report."""
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "virnucpro", *argv, "--output", str(output), "-q"]
        print("+", " ".join(command), file=sys.stderr, flush=True)
        subprocess.run(command, check=True)
        return json.loads(output.read_text())


def host_only(reads: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Host ceiling per model with 1 and all (≤ 8) workers, at the real models' widths."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    report = _virnucpro("benchmark", "--host-only", "--workers", *map(str, sorted({1, min(8, cores)})), "--input", str(reads),
                        "--stages", "dna", "protein", "--device", args.device, "--dnabert", args.dnabert_host,
                        "--esm", args.esm_host)
    keep = ("stage", "model", "workers", "dim", "sequences", "host_seq_per_s", "host_tokens_per_s", "host_seq_per_cpu_s",
            "peak_rss_bytes")
    return [{k: run[k] for k in keep} for run in report["runs"]]


def model_speed(reads: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``virnucpro benchmark`` of both models on the reads: the production engine, forward-only and end to end."""
    extra = ["--peak-tflops", str(args.peak_tflops)] if args.peak_tflops else []
    return _virnucpro("benchmark", "--input", str(reads), "--stages", "dna", "protein", "--device", args.device,
                      "--precision", args.precision, "--dnabert", args.dnabert, "--esm", args.esm, *extra)


def precision(frames: tuple[list[str], list[str]], args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Flips of each mode against fp32: at the real sizes (random weights) and with the trained reference models."""
    import numpy as np
    import torch

    import precision_report

    device = torch.device(args.device)
    nuc, prot = frames
    pick = np.random.default_rng(0).choice(len(nuc), min(len(nuc), args.precision_frames), replace=False)
    real = precision_report.real_size_flips(MODES, [nuc[i] for i in pick], [prot[i] for i in pick], nuc,
                                            args.dna_shape, args.esm_shape, device)
    reference = precision_report.flips([(args.genomes_sample, 500)], MODES, workdir, args.reference_frames, device)
    return {"real_size_random_weights": real, "reference_models": reference}


def prepare_workers(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """``benchmarks/prepare_speed.py --cases workers`` on reads sampled from the repository's genomes."""
    path = workdir / "prepare_workers.json"
    command = [sys.executable, str(REPO / "benchmarks" / "prepare_speed.py"), "--cases", "workers", "--big-reads",
               str(args.prepare_reads), "--repeats", str(args.prepare_repeats), "--realdata", str(GENOMES),
               "--output", str(path)]
    print("+", " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True)
    case = json.loads(path.read_text())["cases"][0]
    return {k: case[k] for k in ("reads", "one_worker", "two_workers", "speedup_2_vs_1", "ideal_2_vs_1", "efficiency",
                                 "identical_outputs")}


def frames_of(fasta: Path, workdir: Path) -> tuple[list[str], list[str]]:
    """Nucleotide and protein frames of ``fasta`` at chunk 500, through the production prepare."""
    from virnucpro.fasta import read_fasta
    from virnucpro.prepare import prepare

    out = workdir / "frames"
    prepare([fasta], out, 500, n_shards=1, progress=False)
    nuc = [r.sequence for p in sorted(out.glob("*.nuc.fa")) for r in read_fasta(p)]
    prot = [r.sequence for p in sorted(out.glob("*.prot.fa")) for r in read_fasta(p)]
    return nuc, prot


def summary_of_models(report: dict[str, Any]) -> dict[str, Any]:
    """Per model, the figures the targets are checked against (the run's whole record stays in ``virnucpro benchmark``)."""
    keep = ("model", "precision", "sequences", "tokens", "forward_tokens_per_s", "e2e_tokens_per_s", "e2e_seq_per_s",
            "mfu", "e2e_mfu", "peak_tflops", "device_busy", "padding_efficiency", "oom_retries", "peak_memory_bytes",
            "peak_memory_kind", "stage_seconds")
    return {run["stage"]: {k: run.get(k) for k in keep} for run in report["runs"]}


def configure(args: argparse.Namespace) -> None:
    """Fill in what ``--smoke`` or a GPU run measures."""
    smoke = 1 if args.smoke else 0
    for name, values in SIZES.items():
        setattr(args, name, values[smoke])
    if args.smoke:  # the bundled real-format tiny models; real-size steps at tiny shapes
        args.device, args.precision = "cpu", "fp32"
        args.dnabert, args.esm = args.dnabert or str(MODELS / "dnabert"), args.esm or str(MODELS / "esm2_t2_tiny.pt")
        args.dnabert_host, args.esm_host = "random-full", "random-3B"
        args.dna_shape, args.esm_shape = "tiny", "tiny"
    else:
        args.device, args.precision = "cuda", "bf16"
        args.dnabert, args.esm = args.dnabert or "random-full", args.esm or "random-3B"
        args.dnabert_host, args.esm_host = args.dnabert, args.esm
        args.dna_shape, args.esm_shape = "DNABERT-S", "3B"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu-benchmark"))
    parser.add_argument("--smoke", action="store_true", help="CPU, bundled tiny models, few reads: checks the script")
    parser.add_argument("--dnabert", default=None, help="DNABERT-S folder for the speed runs (default: random weights, real size)")
    parser.add_argument("--esm", default=None, help="ESM-2 .pt for the speed runs (default: random weights of ESM-2 3B)")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--setup-seconds", type=float, default=0.0, help="install time (passed by gpu_benchmark.sh)")
    args = parser.parse_args(argv)
    configure(args)
    if not args.smoke:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit(f"gpu_benchmark: torch {torch.__version__} in {sys.prefix} sees no CUDA GPU; run with --smoke "
                             "on a CPU, or point PYTHON at an interpreter with a CUDA build of torch and "
                             "VIRNUCPRO_BENCH_VENV at a new folder")

    from prepare_speed import write_real_like

    from virnucpro.bench.report import StageClock, emit_report, peak_rss_bytes

    clock = StageClock()
    clock.parts["setup"] = args.setup_seconds
    clock.start -= args.setup_seconds  # the install ran before this process: the whole includes it
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu-benchmark-") as tmp:
        work = Path(tmp)
        with clock.phase("inputs"):
            reads = write_real_like(work / "reads500.fa", args.reads, 500, GENOMES, seed=1)
            host_reads = write_real_like(work / "host500.fa", args.host_reads, 500, GENOMES, seed=2)
            args.genomes_sample = write_real_like(work / "reference500.fa", args.reference_frames, 500, GENOMES, seed=3)
            frames = frames_of(reads, work)
        with clock.phase("host_only"):
            hosts = host_only(host_reads, args)
        with clock.phase("model_speed"):
            speed = model_speed(reads, args)
        with clock.phase("precision"):
            agreement = precision(frames, args, work)
        with clock.phase("prepare_workers"):
            workers = prepare_workers(args, work)
    models = summary_of_models(speed)
    gpu_peaks = [m["peak_memory_bytes"] for m in models.values() if m.get("peak_memory_kind") == "cuda_max_allocated"]
    report = {
        "smoke": args.smoke,
        "hardware": speed["hardware"],
        "precision": args.precision,
        "input": f"{GENOMES.relative_to(REPO)}: {args.reads} reads of 500 bp (host-only: {args.host_reads})",
        "peak_tflops_source": speed["peak_tflops_source"],
        "models": models,
        "host_only": hosts,
        "peak_gpu_memory_bytes": max(gpu_peaks) if gpu_peaks else None,
        "peak_host_rss_bytes": max([peak_rss_bytes(), speed["peak_rss_bytes"], *(h["peak_rss_bytes"] for h in hosts)]),
        "precision_agreement": agreement,
        "prepare_workers": workers,
        **clock.report(),
    }
    emit_report(report, args.out / "gpu_benchmark.json")
    print(json.dumps({k: report[k] for k in ("seconds", "stage_seconds", "models")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
