"""benchmarks/coverage_evidence.py (the evidence behind the coverage thresholds in docs/output.md) keeps working:
on sequences whose answer is known it counts windows, scored windows and coverage right."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_coverage_evidence_counts_scored_windows(tmp_path: Path) -> None:
    fasta = tmp_path / "known.fa"
    # 1500 bp of GCT repeats: every 500 bp window has a stop-free frame; 1500 N: no codon at all
    fasta.write_text(">coding\n" + "GCT" * 500 + "\n>unknown\n" + "N" * 1500 + "\n")
    out = tmp_path / "coverage.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "coverage_evidence.py"), "--realdata", str(fasta), "--chunks", "500",
         "--output", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    entry = json.loads(out.read_text())["files"]["known.fa"]["500"]
    real = entry["real"]
    assert real["reads"] == 2 and real["reads_no_scored_window"] == 1
    assert real["windows_per_read"] == {"min": 3, "median": 3.0, "max": 3}
    assert real["coverage_min"] == real["coverage_mean"] == 1.0 and real["reads_coverage_below_0.1"] == 0
    assert [(s["id"], s["windows"], s["scored"]) for s in entry["per_sequence"]] == [("coding", 3, 3), ("unknown", 3, 0)]
    assert entry["random_same_lengths"]["reads"] == 2
