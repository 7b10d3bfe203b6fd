"""Shared pieces of the pipeline tests: paths, the params of a CPU test run, and the fixture that runs the module
scripts rendered from this checkout for real, chained the way workflows/virnucpro.nf wires them (one run per
session, shared by the tests that inspect it). Not a conftest.py: the suite's own tests/conftest.py is imported by
name (``from conftest import``), and a second conftest module would shadow it when both folders run together."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent):  # groovy.py / nfmodel.py / pipeline_lint.py here, conftest.py one level up
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import nfmodel  # noqa: E402
import wiring  # noqa: E402

ROOT = nfmodel.ROOT
REF = ROOT / "tests" / "data" / "reference"
MODELS = REF / "models"
CHUNK = 500
SAMPLE = "s1"


def pipeline_params(**overrides) -> dict:
    """Schema defaults plus what a CPU test run sets (the test profile's choices that matter here)."""
    params = nfmodel.schema_defaults(ROOT)
    params.update(outdir="results", shards=2, shard_tokens=None, chunk_length=CHUNK, publish_dir_mode="copy")
    params.update(overrides)
    return params


@pytest.fixture(scope="session")
def params() -> dict:
    return pipeline_params()


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory, params: dict) -> dict:
    """PREPARE → EMBED_DNA/EMBED_PROTEIN per shard → MERGE → PREDICT → SUMMARIZE, each module's real script."""
    base = tmp_path_factory.mktemp("chain")
    return wiring.run_chain(ROOT, base, params, sample=SAMPLE, fastas=[REF / "input.fa"], chunk=CHUNK,
                            dnabert=MODELS / "dnabert", esm=MODELS / "esm2_t2_tiny.pt",
                            esm_aux=[MODELS / "esm2_t2_tiny-contact-regression.pt"], classifier=MODELS / "classifier.pth")
