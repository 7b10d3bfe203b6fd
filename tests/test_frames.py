"""The window rule and six-frame translation against the original's outputs and its documented rule."""

from __future__ import annotations

import io

import pytest

from conftest import INPUT_FA, expected
from virnucpro.fasta import read_fasta, write_record
from virnucpro.frames import CODON_TABLE, reverse_complement, six_frames, translate, window_starts, windows


@pytest.mark.parametrize("chunk", [300, 500])
def test_reproduces_original_chunk_and_frame_files(chunk: int) -> None:
    chunked, nuc, prot = io.StringIO(), io.StringIO(), io.StringIO()
    for record in read_fasta(INPUT_FA):
        for window_id, window in windows(record.id, record.sequence, chunk):
            write_record(chunked, window_id, window, 60)
            for frame in six_frames(window_id, window):
                write_record(nuc, frame.id, frame.nucleotide)
                write_record(prot, frame.id, frame.protein)
    folder = expected(chunk)
    assert chunked.getvalue() == (folder / "chunked.fa").read_text()
    assert nuc.getvalue() == (folder / "identified_nucleotide.fa").read_text()
    assert prot.getvalue() == (folder / "identified_protein.faa").read_text()


@pytest.mark.parametrize(
    "length,chunk,starts,last_len",
    [
        (299, 300, [0], 299),  # < c: one window, whole read
        (300, 300, [0], 300),  # c
        (301, 300, [0, 150], 151),  # c+1: all shifts q+1 = 150, last window short
        (600, 300, [0, 300], 300),  # 2c: no overlap
        (601, 300, [0, 200, 400], 201),  # 2c+1: documented example
        (1001, 500, [0, 333, 666], 335),  # documented example
        (1000, 500, [0, 500], 500),
        (501, 500, [0, 250], 251),
        (20, 500, [0], 20),
    ],
)
def test_window_rule_edge_lengths(length: int, chunk: int, starts: list[int], last_len: int) -> None:
    assert window_starts(length, chunk) == starts
    seq = "A" * length
    got = list(windows("r", seq, chunk))
    assert [w for w, _ in got] == [f"r_chunk_{k}" for k in range(1, len(starts) + 1)]
    assert len(got[-1][1]) == last_len
    assert all(len(w) <= chunk for _, w in got)


def test_zero_length_read_has_no_window() -> None:
    assert window_starts(0, 300) == []
    assert list(windows("r", "", 300)) == []


def _slow_window_starts(n: int, c: int) -> list[int]:
    """The rule exactly as worded in the reference README, written independently."""
    import math

    k = math.ceil(n / c)
    r = k * c - n
    q = r // k
    u = r - q * (k - 1)
    shifts = [q + 1] * u + [q] * max(0, k - 1 - u) + [0]
    return [i * c - sum(shifts[:i]) for i in range(k)]


@pytest.mark.parametrize("chunk", [300, 500])
def test_window_rule_matches_slow_rule_over_many_lengths(chunk: int) -> None:
    for n in range(1, 5 * chunk + 7):
        assert window_starts(n, chunk) == _slow_window_starts(n, chunk), n


def test_translation_drops_ambiguous_codons_and_keeps_iupac_in_reverse_complement() -> None:
    assert translate("ATGNNNTGG") == "MW"
    assert translate("ATGTG") == "M"  # trailing partial codon ignored
    assert reverse_complement("ACGTNRY") == "YRNACGT"  # R and Y are not swapped
    assert len(CODON_TABLE) == 64 and CODON_TABLE["TAA"] == "*" and CODON_TABLE["ATG"] == "M"


def test_frame_nucleotide_slice_is_three_times_protein_plus_one() -> None:
    frames = {f.id[-2:]: f for f in six_frames("w", "ATGGCCAAATTT" + "G")}
    f1 = frames["F1"]
    assert f1.protein == "MAKF"
    assert f1.nucleotide == "ATGGCCAAATTTG"  # 12 + 1 letters
    assert all("*" not in f.protein and f.protein for f in frames.values())


def test_lowercase_window_is_upper_cased_for_frames() -> None:
    assert [f.protein for f in six_frames("w", "atggcc")] == [f.protein for f in six_frames("w", "ATGGCC")]
