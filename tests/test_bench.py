"""``virnucpro benchmark`` / ``profile``: report shape and sanity on CPU with tiny models (no timing thresholds)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from virnucpro.bench import chunk_for_read_length, datasheet_peak, mfu, synthetic_read, write_synthetic_fasta
from virnucpro.bench.report import STAGE_SLACK
from virnucpro.cli import main
from virnucpro.frames import six_frames
from virnucpro.prepare import prepare

REF = Path(__file__).parent / "data" / "reference"
TINY = ["--dnabert", "random-tiny", "--esm", "random-tiny", "--device", "cpu", "-q"]


def _run(tmp_path: Path, *argv: str) -> dict:
    out = tmp_path / "report.json"
    assert main([*argv, "--output", str(out)]) == 0
    return json.loads(out.read_text())


def _check_adds_up(report: dict, phases: set[str]) -> None:
    """The named phases never overlap and cover the whole but for bookkeeping (STAGE_SLACK); rounding 1e-3."""
    parts = report["stage_seconds"]
    assert set(parts) == phases and all(v >= 0 for v in parts.values())
    total = sum(parts.values())
    relative, absolute = STAGE_SLACK
    assert total - 1e-3 <= report["seconds"] <= total + relative * report["seconds"] + absolute + 1e-3, report
    assert math.isclose(report["unaccounted_seconds"], report["seconds"] - total, abs_tol=1e-3)


def _check_embed_run(run: dict) -> None:
    assert run["sequences"] > 0 and run["tokens"] > 0
    assert run["mode"] == "model" and run["workers"] >= 1
    assert run["forward_tokens_per_s"] > 0 and run["forward_seq_per_s"] > 0
    # end to end = FASTA → HDF5 through the engine (reading, tokenising, writing included)
    assert run["e2e_seq_per_s"] > 0 and run["e2e_tokens_per_s"] > 0 and run["e2e_seconds"] > 0
    assert 0 < run["padding_efficiency"] <= 1
    assert math.isclose(run["padding_efficiency"] + run["padding_waste"], 1.0, abs_tol=1e-3)
    assert run["padded_tokens"] >= run["tokens"]
    assert run["flops_per_token"] > 0 and math.isfinite(run["mfu"]) and 0 < run["mfu"] <= 1
    assert 0 < run["e2e_mfu"] <= 1 and run["peak_rss_bytes"] > 0
    assert run["precision"] == "fp32" and run["attention"] in ("sdpa", "reference")
    assert run["peak_memory_bytes"] > 0
    # issue 19 bug 8: the device time of the end-to-end run is inside it, and the stage's phases add up to it
    assert 0 < run["forward_in_e2e_seconds"] <= run["e2e_seconds"] and 0 < run["device_busy"] <= 1
    _check_adds_up(run, {"read_frames", "tokenize", "warmup", "forward", "end_to_end"})
    assert run["stage_seconds"]["end_to_end"] >= run["e2e_seconds"] and run["stage_seconds"]["forward"] >= run["forward_seconds"]


def test_synthetic_reads_have_realistic_frame_rate() -> None:
    """Random DNA gives ~no stop-free frame; the planted ORF gives about one per window (real data: 0.5-1.2)."""
    rng = np.random.default_rng(1)
    for length in (150, 300, 500):
        chunk = chunk_for_read_length(length)
        reads = [synthetic_read(length, rng) for _ in range(100)]
        assert all(len(r) == length and set(r) <= set("ACGT") for r in reads)
        rate = np.mean([len(six_frames("w", r[:chunk])) for r in reads])
        assert 0.9 <= rate <= 2.5, (length, rate)
    plain = ["".join(rng.choice(list("ACGT"), 500)) for _ in range(100)]
    assert np.mean([len(six_frames("w", r)) for r in plain]) < 0.2


def test_synthetic_fasta_through_prepare(tmp_path: Path) -> None:
    fasta = write_synthetic_fasta(tmp_path / "s.fa", 50, 500)
    counts = prepare([fasta], tmp_path / "p", 500, progress=False)["counts"]
    assert counts["reads"] == 50 and 0.3 <= counts["frames"] / counts["windows"] <= 2.5


def test_benchmark_synthetic_all_stages(tmp_path: Path) -> None:
    report = _run(tmp_path, "benchmark", "--reads", "12", "--read-lengths", "150", "500", "--peak-tflops", "1", *TINY)
    assert report["tool_version"] and report["hardware"]["cores"] >= 1 and report["hardware"]["torch"]
    assert report["command"]
    _check_adds_up(report, {"inputs", "peak", "dna", "protein"})
    runs = report["runs"]
    assert [(r["stage"], r["input"]) for r in runs] == [
        (stage, f"synthetic-{n}bp") for stage in ("prepare", "dna", "protein") for n in (150, 500)
    ]
    for run in runs:
        if run["stage"] == "prepare":
            assert run["reads"] == 12 and run["reads_per_s_per_core"] > 0
            assert 0.3 <= run["frames_per_window"] <= 2.5
            assert run["chunk_length"] == (300 if run["input"].startswith("synthetic-150") else 500)
        else:
            _check_embed_run(run)
            assert run["peak_tflops"] == 1
    assert all(r["tokenizer"] == "bpe-trained-on-input" for r in runs if r["stage"] == "dna")


def test_benchmark_real_tiny_models_on_input(tmp_path: Path) -> None:
    """--input with the reference FASTA and the real loaders; the matmul peak is measured when not given."""
    report = _run(
        tmp_path, "benchmark", "--input", str(REF / "input.fa"), "--dnabert", str(REF / "models" / "dnabert"),
        "--esm", str(REF / "models" / "esm2_t2_tiny.pt"), "--device", "cpu", "--stages", "dna", "protein", "-q",
    )
    assert [r["stage"] for r in report["runs"]] == ["dna", "protein"]
    for run in report["runs"]:
        _check_embed_run(run)
        assert run["input"] == "input.fa" and "tokenizer" not in run
    assert report["peak_tflops_source"] == "measured matmul"


def test_benchmark_prepare_only_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark", "--reads", "5", "--read-lengths", "300", "--stages", "prepare", "--peak-tflops", "1", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["stage"] for r in report["runs"]] == ["prepare"]


def test_profile_reports_integer_tokens_per_batch(tmp_path: Path) -> None:
    report = _run(tmp_path, "profile", "--max-tokens", "2048", *TINY)
    assert report["device"] == "cpu" and report["gpu"] is None
    for kind in ("dna", "protein"):
        section = report[kind]
        assert isinstance(section["tokens_per_batch"], int)
        assert section["tokens_per_batch"] in [p["tokens_per_batch"] for p in section["curve"]]
        assert [p["tokens_per_batch"] for p in section["curve"]] == [1024, 2048]
        assert all(p["tokens_per_s"] > 0 and p["peak_memory_bytes"] > 0 for p in section["curve"])


def test_host_only_reports_host_ceiling_per_worker_count(tmp_path: Path) -> None:
    """--host-only: the production FASTA → HDF5 path with a no-op forward, at the real models' widths, per --workers."""
    report = _run(tmp_path, "benchmark", "--host-only", "--workers", "1", "2", "--reads", "40", "--read-lengths", "500",
                  "--stages", "prepare", "dna", "protein", "--dnabert", "random-full", "--esm", "random-3B",
                  "--device", "cpu", "-q")
    assert report["host_only"] is True and report["peak_rss_bytes"] > 0 and report["peak_tflops_source"] is None
    _check_adds_up(report, {"inputs", "dna", "protein"})
    frames = report["runs"][0]["frames"]
    embed = [r for r in report["runs"] if r["stage"] != "prepare"]
    assert [(r["stage"], r["workers"]) for r in embed] == [("dna", 1), ("dna", 2), ("protein", 1), ("protein", 2)]
    for run in embed:
        assert run["mode"] == "host-only" and run["sequences"] == frames and run["tokens"] > frames
        assert run["host_seq_per_s"] > 0 and run["host_tokens_per_s"] > run["host_seq_per_s"] > 0
        assert run["peak_rss_bytes"] > 0 and "mfu" not in run
        assert run["dim"] == (768 if run["stage"] == "dna" else 2560)  # rows as wide as the real models'


def test_host_only_with_real_model_files(tmp_path: Path) -> None:
    report = _run(tmp_path, "benchmark", "--host-only", "--input", str(REF / "input.fa"), "--stages", "dna", "protein",
                  "--dnabert", str(REF / "models" / "dnabert"), "--esm", str(REF / "models" / "esm2_t2_tiny.pt"),
                  "--device", "cpu", "-q")
    assert [(r["stage"], r["dim"]) for r in report["runs"]] == [("dna", 64), ("protein", 64)]
    assert all(r["sequences"] > 0 and r["host_seq_per_s"] > 0 for r in report["runs"])


def test_mfu_is_never_above_one(tmp_path: Path) -> None:
    assert mfu(0.5, 1.0) == (0.5, False)
    assert mfu(3.0, 1.0) == (1.0, True)
    assert mfu(1.0, 0.0) == (None, False)
    # a denominator far too low (a wrong --peak-tflops) is clamped and flagged, not reported as 1000x utilisation
    report = _run(tmp_path, "benchmark", "--reads", "6", "--read-lengths", "500", "--stages", "dna",
                  "--peak-tflops", "1e-9", *TINY)
    (run,) = report["runs"]
    assert run["mfu"] == 1.0 and run["mfu_clamped"] is True and run["e2e_mfu"] <= 1.0


def test_datasheet_peaks_by_gpu_name() -> None:
    assert datasheet_peak("NVIDIA H100 80GB HBM3", "bf16") == ("H100 SXM", 989.4)
    assert datasheet_peak("NVIDIA H100 PCIe", "bf16") == ("H100 PCIe", 756.5)
    assert datasheet_peak("NVIDIA H100 NVL", "fp32") == ("H100 NVL", 60.0)
    assert datasheet_peak("NVIDIA H200", "bf16") == ("H200", 989.4)
    assert datasheet_peak("NVIDIA A100-SXM4-80GB", "tf32") == ("A100", 156.0)
    assert datasheet_peak("NVIDIA L40S", "fp32") == ("L40S", 91.6)
    assert datasheet_peak("NVIDIA L4", "bf16") == ("L4", 121.0)
    assert datasheet_peak("NVIDIA H100 80GB HBM3", "bf16-mixed") == ("H100 SXM", 989.4)  # matmuls run in bf16
    assert datasheet_peak("NVIDIA H100 80GB HBM3", "fp32") == ("H100 SXM", 66.9)
    assert datasheet_peak("Some Future GPU", "bf16") is None  # then the matmul is measured
