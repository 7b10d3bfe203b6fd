"""The FASTA reader: Biopython-compatible ids and sequences, gzip by content, clear errors for junk."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from virnucpro.errors import InputError
from virnucpro.fasta import invalid_letters, read_fasta


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_ids_descriptions_wrapping_crlf_blank_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.fa", b">r1 some description\r\nACGT\r\nac gt\r\n\r\n>r2\n\n>r3\tx\nNNN\n")
    records = list(read_fasta(path))
    assert [(r.id, r.sequence, r.number) for r in records] == [("r1", "ACGTacgt", 1), ("r2", "", 2), ("r3", "NNN", 3)]


def test_gzip_detected_by_content_not_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "reads.fa", gzip.compress(b">x\nACGT\n"))
    assert [(r.id, r.sequence) for r in read_fasta(path)] == [("x", "ACGT")]


@pytest.mark.parametrize(
    "data,needle",
    [
        (b"\x00\x01\x02binary", "binary"),
        (b"\xff\xfe\xfa\xfb garbage", "not valid text"),
        (b"ACGT\n>r\nACGT\n", "not a FASTA file"),
        (b">\nACGT\n", "header has no sequence id"),
    ],
)
def test_junk_is_one_clear_error_naming_the_file(tmp_path: Path, data: bytes, needle: str) -> None:
    path = _write(tmp_path, "bad.fa", data)
    with pytest.raises(InputError) as err:
        list(read_fasta(path))
    assert needle in str(err.value) and str(path) in str(err.value)


def test_truncated_gzip_is_an_input_error(tmp_path: Path) -> None:
    data = gzip.compress(b">x\n" + b"ACGT" * 10000 + b"\n")
    path = _write(tmp_path, "cut.fa.gz", data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot read"):
        list(read_fasta(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        list(read_fasta(tmp_path / "nope.fa"))


def test_invalid_letters() -> None:
    assert invalid_letters("ACGTNRYacgtn") == ""
    assert invalid_letters("ACG1T*E1") == "1*E"
