"""Largest score difference between `virnucpro run` on the bundled example and the original's output, per CPU kernel.

The figures in README.md come from this command (``make golden-diff``): for each ``ATEN_CPU_CAPABILITY`` (default,
avx2, avx512: the vector code PyTorch's own kernels use) and each chunk length, the demo run is made in a temporary
folder and compared with ``tests/data/reference/expected/`` by :func:`conftest.assert_golden_table` (ids and labels
exact). Prints one JSON object. Not a test: the tests assert the tolerance, this measures the figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import CLASSIFIER_PTH, DNABERT_DIR, ESM_PT, INPUT_FA, RUN_TOLERANCE, assert_golden_table, expected  # noqa: E402

KERNELS = ("default", "avx2", "avx512")


def main() -> int:
    worst: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kernel in KERNELS:
            for chunk in (300, 500):
                out = Path(tmp) / f"{kernel}-{chunk}"
                subprocess.run(
                    [sys.executable, "-m", "virnucpro", "run", str(INPUT_FA), "--outdir", str(out), "--chunk-length",
                     str(chunk), "--dnabert", str(DNABERT_DIR), "--esm", str(ESM_PT), "--classifier", str(CLASSIFIER_PTH),
                     "--device", "cpu", "--precision", "fp32", "-q"],
                    check=True, env={**os.environ, "ATEN_CPU_CAPABILITY": kernel}, stderr=subprocess.DEVNULL,
                )
                diff = assert_golden_table(out / "prediction_results.txt", expected(chunk) / "prediction_results.txt",
                                           RUN_TOLERANCE)
                worst.setdefault(f"{chunk}bp", {})[kernel] = float(f"{diff:.2g}")
    print(json.dumps({"max_abs_score_difference": worst}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
