"""scripts/gpu_benchmark.sh --smoke: the one-command GPU measurement runs end to end on CPU, so it cannot rot.

Run as on a fresh machine: in a copy of the working tree (no ``../shared`` next to it), with ``PYTHONPATH`` unset,
so the script must install the package itself (into a venv of its own) and find its input in the repository.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from checkout_copy import copy_checkout
from virnucpro.bench.report import STAGE_SLACK

REPO = Path(__file__).resolve().parent.parent


def test_gpu_benchmark_script_smoke_on_a_fresh_copy(tmp_path: Path) -> None:
    clone = copy_checkout(REPO, tmp_path / "clone")
    assert not (clone.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OUT=str(tmp_path / "out"), PYTHON=sys.executable, VIRNUCPRO_BENCH_VENV=str(tmp_path / "venv"))
    proc = subprocess.run(["bash", str(clone / "scripts" / "gpu_benchmark.sh"), "--smoke"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "installing virnucpro" in proc.stderr  # a fresh venv: the script installed the package itself
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gpu_benchmark.json"]  # ONE JSON
    report = json.loads((tmp_path / "out" / "gpu_benchmark.json").read_text())
    assert report["smoke"] is True and report["hardware"]["device"] == "cpu" and report["precision"] == "fp32"

    models = report["models"]
    assert sorted(models) == ["dna", "protein"]
    for run in models.values():  # the bundled real-format tiny models, loaded from the copy
        assert str(clone / "tests" / "data" / "reference" / "models") in run["model"]
        assert run["e2e_tokens_per_s"] > 0 and 0 < run["mfu"] <= 1 and 0 < run["device_busy"] <= 1
        assert run["peak_memory_bytes"] > 0
    assert report["peak_gpu_memory_bytes"] is None and report["peak_host_rss_bytes"] > 0
    assert {(r["stage"], r["workers"], r["dim"]) for r in report["host_only"]} >= {("dna", 1, 768), ("protein", 1, 2560)}
    assert all(r["host_seq_per_s"] > 0 for r in report["host_only"])

    agreement = report["precision_agreement"]
    real = agreement["real_size_random_weights"]
    assert [c["mode"] for c in real["calls"]] == ["tf32", "bf16", "bf16-mixed"] and real["tf32"] == "emulated"
    assert all(c["frames"] > 0 and 0 <= c["frame_flip_rate"] <= 1 for c in real["calls"])
    assert all(0.99 < c["min_cos"] <= c["mean_cos"] <= 1 + 1e-9 for c in real["cosines"])
    assert {r["mode"] for r in agreement["reference_models"]} == {"tf32", "bf16", "bf16-mixed"}
    assert all(r["frames"] > 0 for r in agreement["reference_models"])
    assert report["prepare_workers"]["identical_outputs"] is True

    parts = report["stage_seconds"]
    assert list(parts) == ["setup", "inputs", "host_only", "model_speed", "precision", "prepare_workers"]
    relative, absolute = STAGE_SLACK
    total = sum(parts.values())
    assert parts["setup"] > 0 and total - 1e-3 <= report["seconds"] <= total + relative * report["seconds"] + absolute
    assert math.isclose(report["unaccounted_seconds"], report["seconds"] - total, abs_tol=1e-3)
