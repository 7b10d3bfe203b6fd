"""The tool checks what Nextflow hands it: each refusal names the shard and exits 2 (virnucpro.shards_check)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from support import REF
from virnucpro.cli import main
from virnucpro.fasta import read_fasta
from virnucpro.h5io import read_matrix, write_matrix
from virnucpro.prepare import prepare
from virnucpro.shards_check import frames_tag, shard_of_fasta, source_attrs

GOLDEN = REF / "expected" / "len500" / "prediction_results.txt"


def _h5(path: Path, kind: str, shard: str | None, ids: list[str], dim: int = 4, dataset: str = "embeddings") -> Path:
    attrs = {"kind": kind, **({"shard": shard} if shard else {})}
    return write_matrix(path, ids, np.ones((len(ids), dim), dtype=np.float32), dataset=dataset, attrs=attrs)


def test_shard_id_comes_from_prepare_names() -> None:
    assert shard_of_fasta("x/s1_0003.nuc.fa") == "s1_0003"
    assert shard_of_fasta("s.a_b_0012.prot.fa") == "s.a_b_0012"
    assert shard_of_fasta("reads.fa") is None


def test_merge_refuses_another_shards_protein(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dna = _h5(tmp_path / "a.dna.h5", "dna", "s1_0001", ["x", "y"])
    prot = _h5(tmp_path / "b.protein.h5", "protein", "s1_0002", ["x", "y"])
    assert main(["merge", "--dna", str(dna), "--protein", str(prot), "--output", str(tmp_path / "f.h5"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "shard s1_0001" in err and "shard s1_0002" in err and "another shard" in err
    assert not (tmp_path / "f.h5").exists()


def test_merge_refuses_wrong_kind_and_row_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dna = _h5(tmp_path / "a.h5", "dna", "s1_0001", ["x", "y"])
    prot = _h5(tmp_path / "b.h5", "protein", "s1_0001", ["x"])
    out = str(tmp_path / "f.h5")
    assert main(["merge", "--dna", str(prot), "--protein", str(dna), "--output", out, "-q"]) == 2
    assert "(shard s1_0001): holds 'protein' rows, expected 'dna'" in capsys.readouterr().err
    assert main(["merge", "--dna", str(dna), "--protein", str(prot), "--output", out, "-q"]) == 2
    assert "shard s1_0001" in (err := capsys.readouterr().err) and "2 rows" in err and "1 rows" in err


def test_merge_records_the_shard(tmp_path: Path) -> None:
    dna = _h5(tmp_path / "a.h5", "dna", "s1_0001", ["x", "y"])
    prot = _h5(tmp_path / "b.h5", "protein", "s1_0001", ["y", "x"])
    assert main(["merge", "--dna", str(dna), "--protein", str(prot), "--output", str(tmp_path / "f.h5"), "-q"]) == 0
    attrs = read_matrix(tmp_path / "f.h5").attrs
    assert (attrs["kind"], attrs["shard"], attrs["rows"]) == ("features", "s1_0001", 2)


def test_predict_refuses_a_non_features_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dna = _h5(tmp_path / "a.h5", "dna", "s1_0001", ["x"])
    cmd = ["predict", "--features", str(dna), "--classifier", str(REF / "models" / "classifier.pth"), "--output", str(tmp_path / "o.tsv"), "-q"]
    assert main(cmd) == 2
    assert "(shard s1_0001): holds 'dna' rows, expected 'features'" in capsys.readouterr().err
    assert not (tmp_path / "o.tsv").exists()


def test_source_attrs_checksum_the_input(tmp_path: Path) -> None:
    f = tmp_path / "s9_0001.nuc.fa"
    f.write_text(">a\nACGT\n")
    attrs = source_attrs(f)
    assert attrs["shard"] == "s9_0001" and attrs["source"] == f.name and len(attrs["source_sha256"]) == 64


@pytest.fixture(scope="module")
def shard_tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """prepare into 3 shards; each shard's golden frame rows as predict would write them (identity line first)."""
    base = tmp_path_factory.mktemp("tables")
    manifest = prepare([REF / "input.fa"], base / "prep", 500, n_shards=3, prefix="s1", progress=False)
    golden = GOLDEN.read_text().splitlines()
    tables = []
    for shard in manifest["shards"]:
        ids = {r.id for r in read_fasta(base / "prep" / shard["nuc"])}
        rows = [line for line in golden[1:] if line.split("\t")[0] in ids]
        attrs = {"shard": shard_of_fasta(shard["nuc"]), "nuc_sha256": shard["nuc_sha256"], "prot_sha256": shard["prot_sha256"]}
        table = base / f"t{shard['index']}.tsv"
        table.write_text("\n".join([frames_tag(attrs, len(rows)), golden[0], *rows]) + "\n")
        tables.append(table)
    return base, tables


def _summarize(base: Path, tables: list[Path], out: Path) -> list[str]:
    return ["summarize", "--reads", str(base / "prep" / "reads.tsv"), "--manifest", str(base / "prep" / "manifest.json"),
            "--frames", *map(str, tables), "--inputs", str(REF / "input.fa"), "--chunk-length", "500", "--outdir", str(out), "-q"]


def test_summarize_places_tables_by_shard_in_any_order(shard_tables, tmp_path: Path) -> None:
    base, tables = shard_tables
    assert main(_summarize(base, tables[::-1], tmp_path / "out")) == 0
    assert (tmp_path / "out" / "prediction_results.txt").read_text() == GOLDEN.read_text()


@pytest.mark.parametrize("case,needle", [
    ("missing", "missing frame table for shard(s) s1_0002"),
    ("duplicate", "shard s1_0001 given twice"),
    ("untagged", "not a frame table predicted from a prepared shard"),
    ("other_run", "shard s1_0003 was embedded from other files"),
    ("truncated", "shard s1_0003 announces"),
])
def test_summarize_refuses_shard_mistakes(shard_tables, tmp_path: Path, capsys: pytest.CaptureFixture, case: str, needle: str) -> None:
    base, tables = shard_tables
    use = list(tables)
    if case == "missing":
        use = [tables[0], tables[2]]
    elif case == "duplicate":
        use = [tables[0], tables[0], tables[1], tables[2]]
    elif case in ("untagged", "other_run", "truncated"):
        lines = tables[2].read_text().splitlines()
        if case == "untagged":
            lines = lines[1:]
        elif case == "other_run":
            lines[0] = lines[0].replace("nuc_sha256=", "nuc_sha256=0")
        else:
            lines = lines[:-1]
        bad = tmp_path / "bad.tsv"
        bad.write_text("\n".join(lines) + "\n")
        use = [tables[0], tables[1], bad]
    assert main(_summarize(base, use, tmp_path / "out")) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "out" / "prediction_results.txt").exists()


def test_summarize_accepts_a_shard_without_frames_left_out(tmp_path: Path) -> None:
    """The pipeline embeds no shard with 0 frames (shardsToEmbed); summarize must accept its absence."""
    from virnucpro.shards_check import tables_by_shard

    manifest = {"shards": [{"nuc": "s_0001.nuc.fa", "frames": 0}, {"nuc": "s_0002.nuc.fa", "frames": 2}]}
    t = tmp_path / "t.tsv"
    t.write_text(frames_tag({"shard": "s_0002"}, 0) + "\nSequence_ID\tPrediction\tscore1\tscore2\n")
    assert tables_by_shard(manifest, [t]) == [None, t]
