"""Prepare stage: golden shards, token balance, every read in reads.tsv with a status, bad input handling."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from conftest import INPUT_FA, expected
from virnucpro.cli import main
from virnucpro.errors import InputError
from virnucpro.fasta import read_fasta
from virnucpro.prepare import prepare, read_reads_table


@pytest.mark.parametrize("chunk", [300, 500])
def test_single_shard_equals_original_identified_files(tmp_path: Path, chunk: int) -> None:
    assert main(["prepare", str(INPUT_FA), "--outdir", str(tmp_path), "--chunk-length", str(chunk), "--write-windows", "-q"]) == 0
    folder = expected(chunk)
    assert (tmp_path / "shard_0001.nuc.fa").read_bytes() == (folder / "identified_nucleotide.fa").read_bytes()
    assert (tmp_path / "shard_0001.prot.fa").read_bytes() == (folder / "identified_protein.faa").read_bytes()
    assert (tmp_path / "windows.fa").read_bytes() == (folder / "chunked.fa").read_bytes()
    summary = json.loads((folder.parent / "summary.json").read_text())["lengths"][str(chunk)]
    rows = list(read_reads_table(tmp_path / "reads.tsv"))
    assert len(rows) == 60
    assert sum(int(r["windows"]) for r in rows) == summary["n_chunks"]
    assert sum(int(r["frames"]) for r in rows) == summary["n_identified_frames"]
    no_frame = [r["read_id"] for r in rows if r["frames"] == "0"]
    assert no_frame == summary["reads_without_frames"]
    assert {r["status"] for r in rows if r["frames"] == "0"} == {"no_stop_free_frame"}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["parameters"]["chunk_length"] == chunk
    assert len(manifest["inputs"][0]["sha256"]) == 64


def test_shards_are_token_balanced_and_keep_read_order(tmp_path: Path) -> None:
    manifest = prepare([INPUT_FA], tmp_path, 300, n_shards=4, progress=False)
    tokens = [s["tokens"] for s in manifest["shards"]]
    assert len(tokens) == 4 and max(tokens) <= 1.35 * min(tokens)
    # union of shards == the original's identified frames; within each shard, the original's relative order
    original = [r.id for r in read_fasta(expected(300) / "identified_nucleotide.fa")]
    position = {fid: i for i, fid in enumerate(original)}
    seen: list[str] = []
    for shard in manifest["shards"]:
        nuc = [r.id for r in read_fasta(tmp_path / shard["nuc"])]
        prot = [r.id for r in read_fasta(tmp_path / shard["prot"])]
        assert nuc == prot
        assert [position[i] for i in nuc] == sorted(position[i] for i in nuc)
        assert shard["tokens"] == sum(len(r.sequence) + 2 for r in read_fasta(tmp_path / shard["prot"]))
        seen += nuc
    assert sorted(seen) == sorted(original)


def test_tokens_per_shard_starts_new_shards(tmp_path: Path) -> None:
    manifest = prepare([INPUT_FA], tmp_path, 500, tokens_per_shard=3000, progress=False)
    assert len(manifest["shards"]) >= 5
    # a shard exceeds the limit only when a single read is bigger than it
    assert all(s["tokens"] <= 3000 or s["reads"] == 1 for s in manifest["shards"])


def test_every_read_gets_a_status(tmp_path: Path) -> None:
    fa = tmp_path / "mixed.fa"
    orf = "ATG" + "GCC" * 60
    fa.write_text(f">ok\n{orf}\n>empty\n>short\nAC\n>stops\n{'CTAG' * 60}\n>bad\nACGT123\n>ok\n{orf}\n")
    gz = tmp_path / "more.fa.gz"
    gz.write_bytes(gzip.compress(f">gz1 desc\n{orf.lower()}\n".encode()))
    prepare([fa, gz], tmp_path / "out", 300, progress=False)
    rows = {(r["read_id"], r["record"], r["file"]): r["status"] for r in read_reads_table(tmp_path / "out" / "reads.tsv")}
    assert rows == {
        ("ok", "1", "mixed.fa"): "ok",
        ("empty", "2", "mixed.fa"): "empty",
        ("short", "3", "mixed.fa"): "too_short",
        ("stops", "4", "mixed.fa"): "no_stop_free_frame",
        ("bad", "5", "mixed.fa"): "invalid_characters",
        ("ok", "6", "mixed.fa"): "duplicate_id",
        ("gz1", "1", "more.fa.gz"): "ok",
    }


@pytest.mark.parametrize("content,needle", [(b"", "no FASTA records"), (b"\x00\x00junk", "binary data")])
def test_bad_files_exit_nonzero_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, content: bytes, needle: str) -> None:
    bad = tmp_path / "bad.fa"
    bad.write_bytes(content)
    assert main(["prepare", str(bad), "--outdir", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and str(bad) in err[0]
    assert not (tmp_path / "o" / "manifest.json").exists()
    assert not list((tmp_path / "o").glob("shard_*"))  # nothing half-written under a final name


def test_invalid_shard_count(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--shards"):
        prepare([INPUT_FA], tmp_path, 300, n_shards=0, progress=False)
