"""scripts/gpu_benchmark.sh --smoke: the one-command GPU measurement runs end to end on CPU (so it cannot rot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_gpu_benchmark_script_smoke(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    proc = subprocess.run([str(REPO / "scripts" / "gpu_benchmark.sh"), "--smoke"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("host_only.json", "embed.json", "agreement.json", "prepare_workers.json", "summary.json"):
        assert (tmp_path / name).is_file(), name
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["smoke"] is True and summary["hardware"]["device"] == "cpu"
    workers = summary["prepare_workers"]
    assert workers["reads"] == 300 and workers["identical_outputs"] is True and workers["speedup_2_vs_1"] > 0
    assert {(r["stage"], r["workers"]) for r in summary["host_only"]} >= {("dna", 1), ("protein", 1)}
    assert all(r["host_seq_per_s"] > 0 and r["peak_rss_bytes"] > 0 for r in summary["host_only"])
    assert [r["stage"] for r in summary["embed"]] == ["dna", "protein"]
    assert all(r["e2e_tokens_per_s"] > 0 and 0 < r["mfu"] <= 1 for r in summary["embed"])
    agreement = summary["agreement"]
    reads = agreement["reference_reads"]
    assert reads["frames"] > 0 and 0 <= reads["flip_rate"] <= 1 and reads["max_abs_virus_score_diff"] < 0.5
    for kind in ("dna", "protein"):
        cos = agreement["real_size_random_weights"][kind]
        assert cos["sequences"] > 0 and 0.9 < cos["min_cos"] <= cos["mean_cos"] <= 1.0 + 1e-9
