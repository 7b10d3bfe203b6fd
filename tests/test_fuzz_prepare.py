"""Property-based input fuzzing of prepare: any FASTA text (headers, wrapping, CRLF, blank lines, IUPAC, lowercase,
gzip) gives no traceback, lists every read exactly once, and yields the windows and frames of a slow reference
implementation written here from the documented rule (independently of virnucpro.frames)."""

from __future__ import annotations

import gzip
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virnucpro.fasta import read_fasta
from virnucpro.prepare import prepare, read_reads_table

BASES = "ACGT"
CODE = {
    a + b + c: "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"[16 * i + 4 * j + k]
    for i, a in enumerate("TCAG") for j, b in enumerate("TCAG") for k, c in enumerate("TCAG")
}


def slow_frames(read_id: str, seq: str, c: int) -> list[tuple[str, str, str]]:
    out = []
    n = len(seq)
    k = math.ceil(n / c) if n else 0
    if k:
        r = k * c - n
        q = r // k
        u = r - q * (k - 1)
        shifts = ([q + 1] * u + [q] * max(0, k - 1 - u) + [0])[:k]
    for i in range(k):
        start = i * c - sum(shifts[:i])
        window = seq[start : start + c].upper()
        rc = "".join({"A": "T", "T": "A", "C": "G", "G": "C"}.get(b, b) for b in reversed(window))
        for strand, tags in ((window, "F"), (rc, "R")):
            for off in range(3):
                prot = ""
                j = off
                while j + 3 <= len(strand):
                    codon = strand[j : j + 3]
                    if codon in CODE:
                        prot += CODE[codon]
                    j += 3
                if prot and "*" not in prot:
                    out.append((f"{read_id}_chunk_{i + 1}{tags}{off + 1}", strand[off : off + 3 * len(prot) + 1], prot))
    return out


ids = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=">"), min_size=1, max_size=12)
seqs = st.one_of(
    st.text(alphabet="ACGTacgtNRYnryUu", max_size=700),
    st.lists(st.sampled_from(["ATG", "GCC", "AAA", "TTT", "CGN", "gga", "TAA"]), max_size=200).map("".join),
)
records = st.lists(st.tuples(ids, st.text(alphabet=" abc=1", max_size=10), seqs), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=records,
    width=st.sampled_from([0, 1, 7, 60, 80]),
    newline=st.sampled_from(["\n", "\r\n"]),
    blank=st.booleans(),
    gz=st.booleans(),
    chunk=st.sampled_from([300, 500]),
    shards=st.integers(1, 3),
    block=st.sampled_from([1, 200, 1 << 20]),
)
def test_prepare_matches_slow_reference(records, width, newline, blank, gz, chunk, shards, block) -> None:
    lines = []
    for rid, desc, seq in records:
        lines.append(f">{rid} {desc}".rstrip())
        step = width or max(len(seq), 1)
        lines += [seq[i : i + step] for i in range(0, len(seq), step)]
        if blank:
            lines.append("")
    text = newline.join(lines) + newline
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.fa"
        path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
        prepare([path], Path(tmp) / "out", chunk, n_shards=shards, progress=False, block_bytes=block)
        rows = list(read_reads_table(Path(tmp) / "out" / "reads.tsv"))
        assert [r["read_id"] for r in rows] == [rid for rid, _, _ in records]
        got_nuc, got_prot = {}, {}
        for shard in sorted((Path(tmp) / "out").glob("shard_*.nuc.fa")):
            got_nuc.update((r.id, r.sequence) for r in read_fasta(shard))
            got_prot.update((r.id, r.sequence) for r in read_fasta(shard.with_name(shard.name.replace(".nuc.", ".prot."))))
        expected: dict[str, tuple[str, str]] = {}
        seen: set[str] = set()
        for (rid, _, seq), row in zip(records, rows):
            if rid in seen:
                assert row["status"] == "duplicate_id"
                continue
            seen.add(rid)
            frames = slow_frames(rid, seq.replace("U", "T").replace("u", "t"), chunk)  # RNA is read as DNA
            assert int(row["windows"]) == (math.ceil(len(seq) / chunk) if seq else 0)
            assert int(row["frames"]) == len(frames)
            expected.update((fid, (nuc, prot)) for fid, nuc, prot in frames)
        assert {k: (got_nuc[k], got_prot[k]) for k in got_nuc} == expected


# --------------------------------------------------------------------------------------------------------------------
# The block translation itself against the per-codon reference: many reads at once, every grouping path.

block_seqs = st.lists(
    st.one_of(
        st.text(alphabet="ACGTacgtNRYnryKMX", max_size=120),
        st.text(alphabet="ACGT", min_size=0, max_size=40),
        st.lists(st.sampled_from(["ATG", "GCC", "AAA", "TTT", "CGN", "gga", "TAA", "NNN"]), max_size=40).map("".join),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seqs=block_seqs,
    chunk=st.sampled_from([3, 7, 10, 31, 60, 300]),
    group_bases=st.sampled_from([1, 50, 1 << 21]),
    uniform_min=st.sampled_from([1, 3, 10**9]),
)
def test_block_frames_match_per_codon_reference(seqs, chunk, group_bases, uniform_min) -> None:
    """Windows of many reads translated together (short reads, reads shorter than a codon, windows split over
    several numpy passes, windows grouped by length or not) give exactly the frames of the per-codon loop."""
    import virnucpro.frames as frames_module

    original_min = frames_module.UNIFORM_MIN
    frames_module.UNIFORM_MIN = uniform_min
    try:
        block = frames_module.block_frames([s.encode() for s in seqs], chunk, group_bases=group_bases)
    finally:
        frames_module.UNIFORM_MIN = original_min
    got = [
        (f"r{block.window_read[w]}_chunk_{block.window_number[w]}{frames_module.FRAME_NAMES[k]}", nuc.decode(), prot.decode())
        for w, k, nuc, prot in zip(block.frame_window.tolist(), block.frame_kind.tolist(), block.nucleotides, block.proteins)
    ]
    want = [frame for i, seq in enumerate(seqs) for frame in slow_frames(f"r{i}", seq, chunk)]
    assert got == want
    assert block.nucleotide_lengths.tolist() == [len(n) for _, n, _ in want]
    assert block.protein_lengths.tolist() == [len(p) for _, _, p in want]
    for i, seq in enumerate(seqs):
        frames_of_read = [f for f in want if f[0].startswith(f"r{i}_chunk_")]
        assert block.frames[i] == len(frames_of_read)
        assert block.tokens[i] == sum(len(p) + 2 for _, _, p in frames_of_read)
        assert block.windows[i] == (math.ceil(len(seq) / chunk) if seq else 0)
        assert block.codons[i] == slow_codon_count(seq, chunk)


def slow_codon_count(seq: str, c: int) -> int:
    """Codons of A/C/G/T only over all six frames of all windows (0: nothing translatable, e.g. an all-N read)."""
    total = 0
    n = len(seq)
    k = math.ceil(n / c) if n else 0
    if not k:
        return 0
    r = k * c - n
    q = r // k
    u = r - q * (k - 1)
    shifts = ([q + 1] * u + [q] * max(0, k - 1 - u) + [0])[:k]
    for i in range(k):
        window = seq[i * c - sum(shifts[:i]) :][:c].upper()
        rc = "".join({"A": "T", "T": "A", "C": "G", "G": "C"}.get(b, b) for b in reversed(window))
        for strand in (window, rc):
            for off in range(3):
                total += sum(strand[j : j + 3] in CODE for j in range(off, len(strand) - 2, 3))
    return total
