"""The model-side benchmark scripts keep working (tiny settings): they run, and their JSON says what the docs quote.

Speed is not asserted (benchmarks measure it; docs/precision.md records the figures with their hardware).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_esm_load_time_script_times_both_forms_and_the_first_hash(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "esm_load_time.py"), "--shape", "8M", "--repeats", "1",
         "--precision", "fp32", "--workdir", str(tmp_path / "w"), "--output", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["shape"]["name"] == "8M" and report["sha256_first_hash"]["bytes"] > 0
    forms = sorted(Path(load["file"]).suffix for load in report["loads"])
    assert forms == [".pt", ".safetensors"]
    assert all(load["best_s"] > 0 and load["gb_per_s_best"] > 0 for load in report["loads"])
