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
