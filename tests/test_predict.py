"""Merge, predict and summarize against the original's outputs (from the golden embeddings)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import CLASSIFIER_PTH, CLASSIFIER_TOLERANCE, INPUT_FA, assert_golden_table, expected
from virnucpro.cli import main
from virnucpro.errors import InputError
from virnucpro.fasta import read_fasta
from virnucpro.h5io import MatrixWriter, read_matrix, write_matrix
from virnucpro.errors import NumericError
from virnucpro.prepare import prepare
from virnucpro.summarize import OUTPUT_FILES


def _golden_h5(tmp_path: Path, chunk: int) -> tuple[Path, Path]:
    folder = expected(chunk)
    dna, esm = np.load(folder / "dnabert.npz"), np.load(folder / "esm.npz")
    return (
        write_matrix(tmp_path / "dna.h5", list(dna["ids"]), dna["embeddings"], attrs={"model_name": "tiny"}),
        write_matrix(tmp_path / "esm.h5", list(esm["ids"]), esm["embeddings"]),  # other row order: join by id
    )


@pytest.mark.parametrize("chunk", [300, 500])
def test_merge_and_predict_reproduce_original(tmp_path: Path, chunk: int) -> None:
    dna, esm = _golden_h5(tmp_path, chunk)
    feats, frames = tmp_path / "f.h5", tmp_path / "frames.tsv"
    assert main(["merge", "--dna", str(dna), "--protein", str(esm), "--output", str(feats), "-q"]) == 0
    merged, golden = read_matrix(feats), np.load(expected(chunk) / "merged.npz")
    assert merged.ids == list(golden["ids"])
    np.testing.assert_array_equal(merged.matrix, golden["embeddings"])
    assert merged.attrs["dna_dim"] == 64 and merged.attrs["complete"]
    assert main(["predict", "--features", str(feats), "--classifier", str(CLASSIFIER_PTH), "--output", str(frames), "-q"]) == 0
    # labels and ids exact; scores to the last float32 digits (they differ between CPUs/kernels, by up to 2e-7)
    assert_golden_table(frames, expected(chunk) / "prediction_results.txt", CLASSIFIER_TOLERANCE)


def test_merge_names_an_id_missing_on_one_side(tmp_path: Path) -> None:
    a = write_matrix(tmp_path / "a.h5", ["x", "y"], np.zeros((2, 3)))
    b = write_matrix(tmp_path / "b.h5", ["x", "z"], np.zeros((2, 4)))
    with pytest.raises(InputError, match=r"'y'.*'z'"):
        from virnucpro.predict import merge_features

        merge_features(a, b, tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()


def test_predict_rejects_wrong_dimension_and_incomplete_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    feats = write_matrix(tmp_path / "f.h5", ["a"], np.zeros((1, 10)), dataset="features")
    assert main(["predict", "--features", str(feats), "--classifier", str(CLASSIFIER_PTH), "--output", str(tmp_path / "o.tsv")]) == 2
    assert "expects 128" in capsys.readouterr().err
    writer = MatrixWriter(tmp_path / "partial.h5", ["a", "b"], 4)
    writer.write_rows([0], np.ones((1, 4)))
    writer._fh.close()  # simulate a crash: temp file left behind, never renamed
    assert not (tmp_path / "partial.h5").exists()
    truncated = tmp_path / "trunc.h5"
    truncated.write_bytes(feats.read_bytes()[:500])
    with pytest.raises(InputError):
        read_matrix(truncated)


def test_non_finite_embeddings_are_never_written(tmp_path: Path) -> None:
    values = np.ones((3, 2), dtype=np.float32)
    values[1, 0] = np.nan
    with pytest.raises(NumericError, match="'b'"):
        write_matrix(tmp_path / "nan.h5", ["a", "b", "c"], values)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("chunk,shards,spill", [(300, 1, None), (300, 7, 7), (500, 3, 1)])
def test_summarize_restores_original_tables_from_any_sharding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, shards: int, spill: int | None
) -> None:
    if spill:  # memory-bounded window sort: spill sorted runs to disk after this many rows, merge at the end
        monkeypatch.setattr("virnucpro.summarize.SPILL_ROWS", spill)
    manifest = prepare([INPUT_FA], tmp_path / "prep", chunk, n_shards=shards, progress=False)
    rows = {line.split("\t")[0]: line for line in (expected(chunk) / "prediction_results.txt").read_text().splitlines()[1:]}
    tables = []
    for shard in manifest["shards"]:
        table = tmp_path / f"{shard['index']}.tsv"
        ids = [r.id for r in read_fasta(tmp_path / "prep" / shard["nuc"])]
        table.write_text("Sequence_ID\tPrediction\tscore1\tscore2\n" + "".join(rows[i] + "\n" for i in ids))
        tables.append(str(table))
    out = tmp_path / "final"
    common = ["--inputs", str(INPUT_FA), "--chunk-length", str(chunk), "-q"]
    assert main(["summarize", "--reads", str(tmp_path / "prep" / "reads.tsv"), "--frames", *tables, "--outdir", str(out), *common]) == 0
    for name in ("prediction_results.txt", "prediction_results_highestscore.csv"):
        assert (out / name).read_bytes() == (expected(chunk) / name).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    lines = (out / "reads.tsv").read_text().splitlines()
    assert len(lines) == 61 and lines[0].startswith("read_id\tlength\twindows")
    unscored = [line.split("\t") for line in lines[1:] if line.split("\t")[4] == "0"]
    assert unscored and all(r[7] == "NA" and r[8] in ("no_stop_free_frame", "no_translatable_codon") for r in unscored)
    if len(tables) > 1:  # shard tables out of order are detected, never silently misassigned
        assert main(["summarize", "--reads", str(tmp_path / "prep" / "reads.tsv"), "--frames", *reversed(tables), "--outdir", str(tmp_path / "x"), *common]) == 2
