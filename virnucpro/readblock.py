"""One block of reads → everything the prepare stage writes for it: statuses, frames, shard records, reads.tsv rows.

:func:`process_block` is pure (its result depends on its arguments only), so it runs unchanged in the reading process
or in a worker (:mod:`virnucpro.blockrunner`), and the outputs are byte-identical whatever the worker count. It parses
a block (:func:`virnucpro.fasta.parse_block`), sorts out reads that are not DNA or are RNA, translates all windows at
once (:func:`virnucpro.frames.block_frames`) and formats the block's records as far as the reading process can write
them without another pass: with one shard and no duplicate id (the common case) they are final.

Input that is not what it claims is handled loudly: RNA (U) is read as T (counted, for the per-file warning); reads
holding letters that are no nucleotide codes are listed as ``invalid_characters`` and counted, so the stage can
refuse a file that is mostly such reads (a protein FASTA).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from virnucpro.fasta import DNA_LETTERS, RawBlock, invalid_letters, parse_block
from virnucpro.frames import FRAME_NAMES, block_frames
from virnucpro.readstable import (
    STATUS_CODE,
    STATUS_EMPTY,
    STATUS_INVALID,
    STATUS_NO_CODON,
    STATUS_NO_FRAME,
    STATUS_OK,
    STATUS_TOO_SHORT,
    gather,
    rows_text,
)

# Letter class of every byte: 0 a nucleotide code (DNA_LETTERS without U), 1 U/u (RNA, read as T), 2 anything else.
_LETTER_CLASS = np.full(256, 2, dtype=np.uint8)
for _c in DNA_LETTERS:
    _LETTER_CLASS[ord(_c)] = 1 if _c in "Uu" else 0
_U_TO_T = bytes.maketrans(b"Uu", b"Tt")
_DNA_BYTES = "".join(sorted(DNA_LETTERS - set("Uu"))).encode("ascii")
_UPPER_DNA_BYTES = bytes(c for c in _DNA_BYTES if chr(c).isupper())
_FRAME_NAMES = tuple(name.encode() for name in FRAME_NAMES)
_WRAP = 60  # windows.fa is wrapped like Biopython's FASTA writer, as the original chunk file


@dataclass
class BlockResult:
    """Everything the reading process needs from one block, formatted as far as possible.

    ``nuc``/``prot``/``windows_text`` hold the block's records; ``*_ends`` (one more entry than reads) delimit each
    read's part. ``rows`` is the block's reads.tsv text (UTF-8) for the common case (no duplicate id, one shard);
    otherwise the reading process builds the rows from the per-read arrays. The ``BULK`` fields come back from a
    worker through shared memory (:mod:`virnucpro.blockpool`), as memoryviews.
    """

    BULK: ClassVar[tuple[str, ...]] = ("nuc", "prot", "windows_text", "rows")

    first_record: int
    ids: list[str]
    lengths: np.ndarray
    windows: np.ndarray
    frames: np.ndarray
    tokens: np.ndarray
    status: np.ndarray
    nuc: bytes | memoryview
    prot: bytes | memoryview
    nuc_ends: np.ndarray
    prot_ends: np.ndarray
    windows_text: bytes | memoryview
    windows_ends: np.ndarray
    rows: bytes | memoryview
    rna_reads: int
    not_dna: int
    nonempty: int
    not_dna_example: str
    #: the example's only foreign letters are alignment gaps ('-', '.'): an aligned file, not a protein one
    not_dna_gaps: bool = False


def _letter_classes(joined: bytes, lengths: np.ndarray) -> tuple[np.ndarray, bool]:
    """Per read, the worst letter class it holds (0 DNA, 1 has U, 2 has other letters; 0 for empty reads), and
    whether every letter is an upper-case nucleotide code (then upper-casing the block would copy it for nothing).

    ``joined`` is the block's sequences end to end. One C pass settles the usual block with nothing but (upper-case)
    nucleotide codes; only a block holding something else is classified read by read.
    """
    worst = np.zeros(len(lengths), dtype=np.uint8)
    rest = joined.translate(None, _UPPER_DNA_BYTES)
    if not rest:
        return worst, True
    if not rest.translate(None, _DNA_BYTES):
        return worst, False
    nonempty = lengths > 0
    classes = _LETTER_CLASS[np.frombuffer(joined, dtype=np.uint8)]
    starts = (np.cumsum(lengths) - lengths)[nonempty]
    worst[nonempty] = np.maximum.reduceat(classes, starts)
    return worst, False


def _records_text(heads: list[bytes], tails: list[bytes], sequences: list[bytes], sizes: np.ndarray) -> tuple[bytes, np.ndarray]:
    """FASTA text of records ``heads[i] + tails[i]`` (the header line, newline included) then ``sequences[i]`` on one
    line, and the end offset of each record (``sizes`` are the records' byte counts).

    Each ``heads[i]`` starts with the newline that ends the record before it (dropped for the first record; the last
    one gets its own), so a record is three pieces, interleaved by slice assignment and joined once: no per-record
    Python, and fewer pieces for the join, whose cost goes by the piece."""
    if not sequences:
        return b"", np.zeros(0, dtype=np.int64)
    parts: list[bytes] = [b""] * (3 * len(sequences) + 1)
    parts[0:-1:3] = heads
    parts[1:-1:3] = tails
    parts[2:-1:3] = sequences
    parts[0] = parts[0][1:]
    parts[-1] = b"\n"
    return b"".join(parts), np.cumsum(sizes)


def _per_read_ends(record_ends: np.ndarray, per_read: np.ndarray) -> np.ndarray:
    """Offsets [0, end of read 1, end of read 2, ...] given each record's end and the records per read."""
    ends = np.concatenate([[0], record_ends])
    return ends[np.concatenate([[0], np.cumsum(per_read)])]


def process_block(block: RawBlock, chunk: int, label: str, write_windows: bool, rows: bool) -> BlockResult:
    """Parse, check, window, translate and format one block of reads (pure: depends on its arguments only)."""
    parsed = parse_block(block)
    ids, sequences = parsed.ids, parsed.sequences
    n = len(ids)
    lengths = np.fromiter(map(len, sequences), np.int64, n)
    joined = parsed.joined if parsed.joined is not None else b"".join(sequences)
    worst, upper_case = _letter_classes(joined, lengths)
    work = sequences
    rna = np.flatnonzero(worst == 1).tolist()
    if worst.any():
        work = list(sequences)
        for i in np.flatnonzero(worst == 2).tolist():
            work[i] = b""  # not DNA: listed as invalid_characters, never windowed
            if not sequences[i].isascii():  # the length column counts letters, not UTF-8 bytes
                lengths[i] = len(sequences[i].decode("utf-8", "replace"))
        for i in rna:
            work[i] = sequences[i].translate(_U_TO_T)
        joined = b"".join(work)
    frames = block_frames(work, chunk, joined=joined, lengths=lengths if work is sequences else None, upper_case=upper_case)

    status = np.full(n, STATUS_CODE[STATUS_NO_FRAME], dtype=np.uint8)
    status[frames.codons == 0] = STATUS_CODE[STATUS_NO_CODON]
    status[lengths < 3] = STATUS_CODE[STATUS_TOO_SHORT]
    status[frames.frames > 0] = STATUS_CODE[STATUS_OK]
    status[worst == 2] = STATUS_CODE[STATUS_INVALID]
    status[lengths == 0] = STATUS_CODE[STATUS_EMPTY]

    # a frame's header line is two pieces gathered from short lists rather than formatted frame by frame: "\n>{id}"
    # per read (the newline ends the record before it; one encode and split make them all: ids hold no white space)
    # and "_chunk_{k}F1\n".."_chunk_{k}R3\n" per window number and kind
    heads = (" \n>" + " \n>".join(ids)).encode("utf-8").split(b" ")[1:] if n else []
    tails = [b"_chunk_%d%s\n" % (k, name) for k in range(1, int(frames.windows.max(initial=0)) + 1) for name in _FRAME_NAMES]
    frame_read = frames.window_read[frames.frame_window]
    frame_tail = 6 * (frames.window_number[frames.frame_window] - 1) + frames.frame_kind
    head_pieces, tail_pieces = gather(heads, frame_read), gather(tails, frame_tail)
    header_sizes = np.fromiter(map(len, heads), np.int64, n)[frame_read] + np.fromiter(map(len, tails), np.int64, len(tails))[frame_tail]
    nuc, nuc_record_ends = _records_text(head_pieces, tail_pieces, frames.nucleotides, header_sizes + frames.nucleotide_lengths)
    prot, prot_record_ends = _records_text(head_pieces, tail_pieces, frames.proteins, header_sizes + frames.protein_lengths)

    windows_text, windows_ends = b"", np.zeros(n + 1, dtype=np.int64)
    if write_windows:
        pieces: list[bytes] = []
        for r, k, start, length in zip(
            frames.window_read.tolist(), frames.window_number.tolist(), frames.window_start.tolist(), frames.window_length.tolist()
        ):
            window = work[r][start : start + length]
            pieces.append(b"%s_chunk_%d\n%s\n" % (heads[r][1:], k, b"\n".join(window[j : j + _WRAP] for j in range(0, length, _WRAP))))
        windows_text = b"".join(pieces)
        sizes = np.fromiter(map(len, pieces), np.int64, len(pieces))
        windows_ends = _per_read_ends(np.cumsum(sizes), frames.windows)

    text = b""
    if rows:
        shard = (frames.frames > 0).astype(np.int64)
        text = rows_text(ids, label, block.first_record, lengths, frames.windows, frames.frames, frames.tokens, shard, status)

    not_dna = np.flatnonzero(worst == 2)
    example = ""
    gaps = False
    if len(not_dna):
        i = int(not_dna[0])
        letters = invalid_letters(sequences[i].decode("utf-8", "replace"))
        example = f"e.g. record {block.first_record + i} ({ids[i]}) has {letters[:12]!r}"
        gaps = set(letters) <= set("-.")
    return BlockResult(
        first_record=block.first_record,
        ids=ids,
        lengths=lengths,
        windows=frames.windows,
        frames=frames.frames,
        tokens=frames.tokens,
        status=status,
        nuc=nuc,
        prot=prot,
        nuc_ends=_per_read_ends(nuc_record_ends, frames.frames),
        prot_ends=_per_read_ends(prot_record_ends, frames.frames),
        windows_text=windows_text,
        windows_ends=windows_ends,
        rows=text,
        rna_reads=len(rna),
        not_dna=len(not_dna),
        nonempty=int(np.count_nonzero(lengths)),
        not_dna_example=example,
        not_dna_gaps=gaps,
    )

