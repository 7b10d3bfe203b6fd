"""The real module scripts chained as workflows/virnucpro.nf wires them, on the bundled reference data (tiny models,
CPU): every output is of its kind and carries its shard, and the per-sample tables equal the original's. Then the
same scripts handed the wrong files: the tool refuses, naming the shard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nfmodel
from support import CHUNK, MODELS, REF, ROOT, SAMPLE, chain, params, pipeline_params  # noqa: F401 (fixtures)
from virnucpro.h5io import read_matrix
from virnucpro.shards_check import read_frames_tag

EXPECTED = REF / "expected" / f"len{CHUNK}"


def test_chain_runs_two_shards(chain: dict) -> None:
    assert [m["shard"] for m, _, _ in chain["shards"]] == [1, 2]


@pytest.mark.parametrize("proc,kind", [("EMBED_DNA", "dna"), ("EMBED_PROTEIN", "protein"), ("MERGE", "features")])
def test_each_h5_is_of_its_kind_and_shard(chain: dict, proc: str, kind: str) -> None:
    for result in chain[proc]:
        meta, h5 = result.outputs["h5"][0]
        attrs = read_matrix(h5).attrs
        assert attrs["kind"] == kind
        assert attrs["shard"] == f"{SAMPLE}_{meta['shard']:04d}"
        assert attrs["rows"] > 0 and attrs["complete"]


def test_frame_tables_name_their_shard(chain: dict) -> None:
    for result in chain["PREDICT"]:
        meta, tsv = result.outputs["frames"][0]
        tag = read_frames_tag(tsv)
        assert tag["kind"] == "frames" and tag["shard"] == f"{SAMPLE}_{meta['shard']:04d}"


def test_chained_tables_equal_the_original(chain: dict) -> None:
    out = chain["SUMMARIZE"].outputs
    assert out["highestscore"][0][1].read_text() == (EXPECTED / "prediction_results_highestscore.csv").read_text()
    got = [line.split("\t") for line in out["results"][0][1].read_text().splitlines()]
    want = [line.split("\t") for line in (EXPECTED / "prediction_results.txt").read_text().splitlines()]
    assert [r[:2] for r in got] == [r[:2] for r in want]
    np.testing.assert_allclose(np.array([r[2:] for r in got[1:]], float), np.array([r[2:] for r in want[1:]], float), atol=1e-4)
    mqc = out["mqc"][0][1].read_text().splitlines()
    assert mqc[1].split("\t")[:2] == [SAMPLE, "60"]


def _task(folder: str, inputs: list, task_dir: Path) -> nfmodel.TaskResult:
    return nfmodel.run_task(nfmodel.load_module(ROOT, folder), inputs, task_dir, params=pipeline_params(), check=False)


def test_merge_script_refuses_another_shards_protein(chain: dict, tmp_path: Path) -> None:
    (m1, dna1), (_, prot2) = chain["EMBED_DNA"][0].outputs["h5"][0], chain["EMBED_PROTEIN"][1].outputs["h5"][0]
    result = _task("merge", [[m1, dna1, prot2]], tmp_path / "merge")
    assert result.returncode == 2
    assert f"{SAMPLE}_0001" in result.stderr and f"{SAMPLE}_0002" in result.stderr


def test_predict_script_refuses_an_embedding(chain: dict, tmp_path: Path) -> None:
    meta, dna = chain["EMBED_DNA"][0].outputs["h5"][0]
    result = _task("predict", [[meta, dna], MODELS / "classifier.pth", CHUNK], tmp_path / "predict")
    assert result.returncode == 2 and "expected 'features'" in result.stderr


def test_summarize_script_refuses_a_missing_shard(chain: dict, tmp_path: Path) -> None:
    prep = chain["PREPARE"].outputs
    frames = [chain["PREDICT"][0].outputs["frames"][0][1]]
    inputs = [[{"id": SAMPLE}, prep["reads"][0][1], prep["manifest"][0][1], frames, [REF / "input.fa"]], CHUNK]
    result = _task("summarize", inputs, tmp_path / "summarize")
    assert result.returncode == 2 and f"missing frame table for shard(s) {SAMPLE}_0002" in result.stderr


def test_prepare_script_accepts_an_empty_sample_and_same_named_files(tmp_path: Path) -> None:
    """--allow-empty: one empty sample must not stop the others; two `reads.fa` of one sample are staged apart."""
    empty = tmp_path / "empty" / "e.fa"
    empty.parent.mkdir()
    empty.write_text("")
    result = _task("prepare", [[{"id": "e"}, [empty]], CHUNK], tmp_path / "prep_empty")
    assert result.returncode == 0, result.stderr
    lanes = [ROOT / "tests" / "data" / "pipeline" / "lane1" / "reads.fa", ROOT / "tests" / "data" / "pipeline" / "lane2" / "reads.fa"]
    result = _task("prepare", [[{"id": "l"}, lanes], CHUNK], tmp_path / "prep_lanes")
    assert result.returncode == 0, result.stderr


def test_real_outputs_publish_where_docs_say(chain: dict) -> None:
    """The real scripts' file names (not only the stubs') land on the documented paths."""
    from test_b_module_scripts import _normalise, docs_published, published

    params = pipeline_params(save_shards=True, save_embeddings=True, save_frames=True)
    docs = docs_published()
    for proc in ("PREPARE", "EMBED_DNA", "EMBED_PROTEIN", "MERGE", "PREDICT", "SUMMARIZE"):
        for result in chain[proc] if isinstance(chain[proc], list) else [chain[proc]]:
            for path in published(result, params):
                assert _normalise(path) in docs, f"{proc} publishes {path}, which docs/output.md does not list"
