"""benchmarks/prepare_speed.py keeps working (tiny mode): it runs both tools as processes, and they agree byte for byte.

Speed is not asserted here (benchmarks measure it; see docs/benchmarks.md); only the harness and the faithfulness of
the per-codon baseline it compares against.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import Bio  # noqa: F401 - biopython is a test extra: the baseline parses with it, as the original does
import pytest

from conftest import INPUT_FA, expected

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "prepare_speed.py"


@pytest.mark.parametrize("chunk", [300, 500])
def test_original_recreation_reproduces_the_golden_files(tmp_path: Path, chunk: int) -> None:
    """The baseline is the original's rule: its outputs equal those of the original code on the reference reads."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "original_prepare.py"), str(INPUT_FA), str(chunk), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in ("identified_nucleotide.fa", "identified_protein.faa"):
        assert (tmp_path / name).read_bytes() == (expected(chunk) / name).read_bytes()
    assert (tmp_path / f"chunked{chunk}.fa").read_bytes() == (expected(chunk) / "chunked.fa").read_bytes()


def test_benchmark_script_tiny_mode(tmp_path: Path) -> None:
    out, work = tmp_path / "report.json", tmp_path / "work"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # as on the machine where the figures were taken
    (work / "real-like-150bp-virnucpro").mkdir(parents=True)
    (work / "real-like-150bp-virnucpro" / "stale.txt").write_text("an earlier run's file\n")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--reads", "150", "--big-reads", "300", "--realdata", str(INPUT_FA), "--output", str(out),
         "--cases", "synthetic-500bp", "real-like-150bp", "workers", "--repeats", "2", "--workdir", str(work)],
        capture_output=True, text=True, env=env,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert "bytecode cached" in report["timed_runs"]
    # the timed processes ran with a bytecode cache (as an installed package has), whatever the environment said
    assert list((work / "pycache").rglob("virnucpro/readblock*.pyc"))
    assert not (work / "real-like-150bp-virnucpro" / "stale.txt").exists()  # each timed run writes to a new folder
    compared = [c for c in report["cases"] if c["case"] != "workers"]
    assert [c["case"] for c in compared] == ["synthetic-500bp", "real-like-150bp"]
    assert [c["chunk_length"] for c in compared] == [500, 300]
    for case in compared:
        assert case["identical_to_original"] is True
        assert case["frames"] > 0 and case["reads"] == 150
        assert case["original"]["wall_s"] > 0 and case["virnucpro_1_worker"]["cpu_s"] > 0
        runs = case["all_runs_wall_s"]
        assert sorted(runs) == ["original", "virnucpro", "virnucpro_1_worker"] and all(len(v) == 2 for v in runs.values())
        medians = case["medians"]
        assert medians["wall_s"]["original"] == round(sum(runs["original"]) / 2, 3)
        assert medians["speedup_vs_original"] == pytest.approx(medians["wall_s"]["original"] / medians["wall_s"]["virnucpro"], rel=0.01)  # times are reported to the ms
        assert case["speedup_vs_original"] == pytest.approx(min(runs["original"]) / min(runs["virnucpro"]), rel=0.01)
    workers = report["cases"][-1]
    assert workers["identical_outputs"] is True and workers["halves_hold_every_read"] is True and workers["reads"] == 300
    runs = workers["all_runs_wall_s"]
    assert sorted(runs) == ["halves", "one", "two"] and all(len(v) == 2 and min(v) > 0 for v in runs.values())
    assert workers["speedup_2_vs_1"] == pytest.approx(min(runs["one"]) / min(runs["two"]), rel=0.01)
    assert workers["ideal_2_vs_1"] == pytest.approx(min(runs["one"]) / min(runs["halves"]), rel=0.01)
