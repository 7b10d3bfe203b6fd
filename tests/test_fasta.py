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


# --------------------------------------------------------------------------------------------------------------------
# Streams, block reading, exact error locations

import io
import os
import sys
import threading

from virnucpro.checksum import file_sha256
from virnucpro.fasta import parse_block, read_blocks
from virnucpro.instream import InputStream, check_input

RECORDS = b">r1 first\nACGT\nAC\n>r2\n\n>r3 x y\nNNNacgt\n>r4\nA\n"


def _records(path) -> list[tuple[str, str, int, int]]:
    return [(r.id, r.sequence, r.number, r.line) for r in read_fasta(path)]


def test_header_lines_and_numbers(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.fa", b"\n\n" + RECORDS)
    assert _records(path) == [("r1", "ACGTAC", 1, 3), ("r2", "", 2, 6), ("r3", "NNNacgt", 3, 8), ("r4", "A", 4, 10)]


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_crlf_and_lone_cr_line_endings(tmp_path: Path, newline: bytes) -> None:
    path = _write(tmp_path, "a.fa", RECORDS.replace(b"\n", newline))
    assert _records(path) == _records(_write(tmp_path, "b.fa", RECORDS))


@pytest.mark.parametrize("block_bytes", [1, 2, 5, 13, 64, 1 << 20])
def test_blocks_hold_whole_records_whatever_their_size(tmp_path: Path, block_bytes: int) -> None:
    data = b"\r\n".join([b"", b">a", b"AC", b"GT", b">b desc", b"", b">c", b"N" * 50, b">d", b"acgu"]) + b"\r\n"
    path = _write(tmp_path, "a.fa", data)
    with InputStream(path) as stream:
        blocks = list(read_blocks(stream, block_bytes))
    assert all(b.data.startswith(b">") for b in blocks)
    parsed = [parse_block(b, with_lines=True) for b in blocks]
    got = [(i, s.decode(), b.first_record + k, line) for b in parsed for k, (i, s, line) in enumerate(zip(b.ids, b.sequences, b.lines))]
    assert got == [("a", "ACGT", 1, 2), ("b", "", 2, 5), ("c", "N" * 50, 3, 7), ("d", "acgu", 4, 9)]


def test_latin1_byte_in_a_header_names_its_record_and_line(tmp_path: Path) -> None:
    data = b">r1\nACGT\n>r2\nACGT\nACGT\n>caf\xe9 sample\nACGT\n"
    path = _write(tmp_path, "lat.fa", b"".join([b">x%d\nACGT\n" % i for i in range(3000)]) + data)
    with pytest.raises(InputError) as err:
        list(read_fasta(path))
    message = str(err.value)
    assert f"{path}: record 3003 (caf\\xe9), line 6006: header is not valid text (byte 0xe9 at column 5" in message


def test_latin1_byte_in_a_sequence_line_names_its_record_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "lat.fa", b">r1\nACGT\n>r2 d\nACGT\nAC\xe9T\n")
    with pytest.raises(InputError, match=r"record 2 \(r2\), line 5: not valid text \(byte 0xe9"):
        list(read_fasta(path))


def test_utf8_letters_in_a_sequence_are_kept_for_the_caller_to_judge(tmp_path: Path) -> None:
    path = _write(tmp_path, "u.fa", ">r1 \u00e9\nAC\u00e9T\n".encode())
    assert [(r.id, r.sequence) for r in read_fasta(path)] == [("r1", "AC\u00e9T")]


def test_a_directory_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory, not a FASTA file"):
        list(read_fasta(tmp_path))
    with pytest.raises(InputError, match="is a directory, not a FASTA file"):
        check_input(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        check_input(tmp_path / "missing.fa")
    check_input("-")  # streams are judged by reading them


@pytest.mark.parametrize("compress", [False, True])
def test_standard_input_plain_or_gzip(monkeypatch: pytest.MonkeyPatch, compress: bool) -> None:
    data = gzip.compress(RECORDS) if compress else RECORDS
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(data))))
    assert [(r.id, r.sequence) for r in read_fasta("-")] == [("r1", "ACGTAC"), ("r2", ""), ("r3", "NNNacgt"), ("r4", "A")]


def test_gzip_on_a_pipe_is_detected_by_its_first_bytes(tmp_path: Path) -> None:
    """A FIFO cannot seek back: the sniffed magic bytes must be replayed into the decompressor (one byte at a time)."""
    fifo = tmp_path / "stream"
    os.mkfifo(fifo)
    data = gzip.compress(RECORDS * 200)

    def feed() -> None:
        with open(fifo, "wb", buffering=0) as out:
            out.write(data[:1])
            out.write(data[1:])

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        with InputStream(fifo) as stream:
            assert stream.gzip
            records = [r for b in read_blocks(stream, 100) for r in parse_block(b).ids]
            digest = stream.sha256()
    finally:
        writer.join()
    assert len(records) == 800
    (tmp_path / "copy.gz").write_bytes(data)
    assert digest == file_sha256(tmp_path / "copy.gz")


def test_stream_checksum_is_the_file_checksum(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.fa", RECORDS * 1000)
    with InputStream(path) as stream:
        stream.read(10)  # whatever was consumed, the digest covers the whole file
        assert stream.sha256() == file_sha256(path)


def test_one_line_records_fast_layout_same_answers(tmp_path: Path) -> None:
    """Blocks of one-sequence-line records take a shortcut; white space, empty records and errors still behave."""
    path = _write(tmp_path, "a.fa", b">a d\nAC GT\t\n>b\n\n>c\nNNac\n")
    assert _records(path) == [("a", "ACGT", 1, 1), ("b", "", 2, 3), ("c", "NNac", 3, 5)]
    bad_header = _write(tmp_path, "h.fa", b">a\nACGT\n>b\xff x\nACGT\n")
    with pytest.raises(InputError, match=r"record 2 \(b\\xff\), line 3: header is not valid text"):
        list(read_fasta(bad_header))
    bad_sequence = _write(tmp_path, "s.fa", b">a\nACGT\n>b x\nAC\xffGT\n")
    with pytest.raises(InputError, match=r"record 2 \(b\), line 4: not valid text \(byte 0xff"):
        list(read_fasta(bad_sequence))
    no_id = _write(tmp_path, "n.fa", b">a\nACGT\n> \nACGT\n")
    with pytest.raises(InputError, match=r"record 2 \(line 3\): header has no sequence id"):
        list(read_fasta(no_id))


def _reference_records(data: bytes) -> list[tuple[str, str, int, int]]:
    """Line-by-line reading of ``data`` (LF line ends), as Biopython does: id, sequence, record number, header line."""
    records: list[list] = []
    for lineno, line in enumerate(data.decode("utf-8").split("\n"), start=1):
        if line.startswith(">"):
            records.append([line[1:].split(None, 1)[0], "", len(records) + 1, lineno])
        elif records:
            records[-1][1] += "".join(line.split())
    return [tuple(r) for r in records]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("block_bytes", [40, 1 << 20])
def test_wrapped_records_whole_block_parsing_matches_line_by_line(tmp_path: Path, seed: int, block_bytes: int) -> None:
    """Multi-line records are split with whole-block operations (and ids picked with a mask): the answers, line
    numbers included, must equal a line-by-line reading whatever the wrapping, blank lines, white space in sequence
    lines, description separators (tab, \\x1c) or a space between '>' and the id."""
    import random

    rng = random.Random(seed)
    parts = []
    for i in range(rng.randint(1, 60)):
        space = rng.choice([" ", "\t", "\x1c", " \t"])
        title = rng.choice([f"r{i}", f"r{i}{space}desc {i}", f"r{i}>x{space}d"] + ([f" r{i} lead"] if seed % 2 else []))
        sequence = "".join(rng.choice("ACGTNacgt") for _ in range(rng.randint(0, 200)))
        width = rng.choice([10, 60, 1000])
        lines = [sequence[j : j + width] for j in range(0, len(sequence), width)]
        if seed % 3 == 0 and lines:
            lines[0] = lines[0][:3] + rng.choice([" ", "\t"]) + lines[0][3:]  # white space inside a sequence line
        if rng.random() < 0.2:
            lines.append("")  # blank line
        parts.append("\n".join([">" + title, *lines]))
    data = ("\n".join(parts) + rng.choice(["\n", ""])).encode()
    path = _write(tmp_path, "w.fa", data)
    with InputStream(path) as stream:
        got = [
            (i, s.decode(), b.first_record + k, line)
            for b in map(lambda blk: parse_block(blk, with_lines=True), read_blocks(stream, block_bytes))
            for k, (i, s, line) in enumerate(zip(b.ids, b.sequences, b.lines))
        ]
    assert got == _reference_records(data)


TWO_RECORDS = b">x desc\nACGT\nAC\n>y\nGGTT\n"


@pytest.mark.parametrize("codec", ["plain", "gzip", "bzip2", "xz"])
@pytest.mark.parametrize("bom", [False, True])
def test_compressed_inputs_and_byte_order_mark_are_read_by_content(tmp_path: Path, codec: str, bom: bool) -> None:
    import bz2
    import hashlib
    import lzma

    from virnucpro.instream import InputStream

    text = (b"\xef\xbb\xbf" if bom else b"") + TWO_RECORDS
    data = {"plain": text, "gzip": gzip.compress(text), "bzip2": bz2.compress(text), "xz": lzma.compress(text)}[codec]
    path = _write(tmp_path, "reads.fa", data)  # no telling suffix: the first bytes decide
    assert [(r.id, r.sequence, r.line) for r in read_fasta(path)] == [("x", "ACGTAC", 1), ("y", "GGTT", 4)]
    with InputStream(path) as stream:
        assert stream.format == codec
        assert stream.sha256() == hashlib.sha256(data).hexdigest()  # the file as stored, before decompression


@pytest.mark.parametrize("codec", ["bzip2", "xz"])
def test_truncated_bzip2_or_xz_is_an_input_error(tmp_path: Path, codec: str) -> None:
    import bz2
    import lzma

    text = b">x\n" + bytes(random_dna(40000), "ascii") + b"\n"
    data = bz2.compress(text) if codec == "bzip2" else lzma.compress(text)
    path = _write(tmp_path, "cut.fa", data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.fa: cannot read past record 0"):
        list(read_fasta(path))


def random_dna(n: int, seed: int = 3) -> str:
    import random

    return "".join(random.Random(seed).choices("ACGT", k=n))


def test_zstd_without_zstandard_is_refused_naming_the_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "zstandard", None)  # as on a machine without the package
    path = _write(tmp_path, "reads.fa.zst", b"\x28\xb5\x2f\xfd\x04\x58\x45\x00\x00")
    with pytest.raises(InputError) as err:
        list(read_fasta(path))
    message = str(err.value)
    assert message.startswith(f"{path}: zstd-compressed") and "zstandard" in message and "binary" not in message


def test_zstd_is_read_through_zstandard_when_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader hands a zstd stream to the ``zstandard`` package (stood in for here: it is optional)."""
    import io
    import sys
    import types

    frame = b"\x28\xb5\x2f\xfd"

    class Decompressor:
        def stream_reader(self, raw, read_across_frames=False):
            assert read_across_frames  # files written by pzstd or concatenated hold several frames
            return io.BytesIO(raw.read().replace(frame, b""))

    monkeypatch.setitem(sys.modules, "zstandard", types.SimpleNamespace(ZstdDecompressor=Decompressor))
    path = _write(tmp_path, "reads.fa", frame + TWO_RECORDS)
    assert [r.id for r in read_fasta(path)] == ["x", "y"]


def test_byte_order_mark_on_a_pipe_read_one_byte_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys
    import types

    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = data

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            if not self.data:
                return 0
            buffer[:1], self.data = self.data[:1], self.data[1:]
            return 1

    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=Trickle(b"\xef\xbb\xbf" + TWO_RECORDS)))
    assert [r.id for r in read_fasta("-")] == ["x", "y"]
