"""Shared fixtures: the golden reference set (tiny models + outputs of the ORIGINAL code) copied into tests/data."""

from __future__ import annotations

from pathlib import Path

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
