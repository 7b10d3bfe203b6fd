"""Shared fixtures: the golden reference set (tiny models + outputs of the ORIGINAL code) copied into tests/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REF = Path(__file__).parent / "data" / "reference"
MODELS = REF / "models"
EXPECTED = REF / "expected"
INPUT_FA = REF / "input.fa"
DNABERT_DIR = MODELS / "dnabert"
ESM_PT = MODELS / "esm2_t2_tiny.pt"
CLASSIFIER_PTH = MODELS / "classifier.pth"


@pytest.fixture(scope="session")
def ref() -> Path:
    return REF


def expected(chunk: int) -> Path:
    """Folder of the original's outputs for one chunk length."""
    return EXPECTED / f"len{chunk}"


def golden(kind: str, chunk: int) -> tuple[list[str], np.ndarray]:
    """Golden ids and embeddings (``kind`` = "dnabert" or "esm") computed by the original for one chunk length."""
    data = np.load(expected(chunk) / f"{kind}.npz")
    return [str(i) for i in data["ids"]], np.asarray(data["embeddings"], dtype=np.float32)


def golden_in_order(kind: str, chunk: int, ids: list[str]) -> np.ndarray:
    """Golden rows rearranged to ``ids`` (ESM rows are stored in fair-esm's batch order, not file order)."""
    gold_ids, matrix = golden(kind, chunk)
    index = {name: i for i, name in enumerate(gold_ids)}
    return matrix[[index[name] for name in ids]]


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows."""
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


#: Score tolerances of golden comparisons. Ids and labels must match exactly; float32 scores may not: the same sums
#: run in another order on another CPU or kernel (the matrix library picks AVX-512, AVX2 or scalar blocking from the
#: CPU, and ``ATEN_CPU_CAPABILITY`` does not switch all of it), which moves the last float32 digit (eps 1.2e-7).
#: The classifier alone, on the original's own embeddings: measured at most 2e-7, allowed a few ulp more.
CLASSIFIER_TOLERANCE = 1e-6
#: The whole run: embeddings computed in padded batches (the original: one sequence at a time), then classified.
#: README states the measured range across kernels (at most 1.0e-6); 10x that is allowed.
RUN_TOLERANCE = 1e-5


def _is_float(cell: str) -> bool:
    """A score cell: parses as a float and is written as one (ids, labels, counts and True/False are not)."""
    if not any(c in cell for c in ".eE") or not any(c.isdigit() for c in cell):
        return False
    try:
        float(cell)
    except ValueError:
        return False
    return True


def assert_golden_table(got: Path, want: Path, tolerance: float, sep: str = "\t") -> float:
    """Compare a table with a golden one: same rows, same header, every cell that is not a float identical (ids and
    labels exact), float cells within ``tolerance``. Returns the largest float difference (for figures)."""
    got_rows = [line.split(sep) for line in got.read_text().splitlines()]
    want_rows = [line.split(sep) for line in want.read_text().splitlines()]
    assert len(got_rows) == len(want_rows), f"{got.name}: {len(got_rows)} rows, golden {len(want_rows)}"
    worst = 0.0
    for number, (g, w) in enumerate(zip(got_rows, want_rows), start=1):
        assert len(g) == len(w), f"{got.name} line {number}: {g} vs golden {w}"
        for a, b in zip(g, w):
            if number > 1 and _is_float(b) and _is_float(a):
                worst = max(worst, abs(float(a) - float(b)))
            else:
                assert a == b, f"{got.name} line {number}: {g} vs golden {w}"
    assert worst <= tolerance, f"{got.name}: scores differ by up to {worst:.2g} from the golden table (allowed {tolerance:g})"
    return worst
