"""The original VirNucPro window rule and six-frame translation, reproduced quirk for quirk, for many reads at once.

The published classifiers were trained on features computed exactly this way, so the quirks stay: the overlap
rule that usually leaves the last window shorter than the chunk length, codons with ambiguous letters dropped rather
than translated to X, a reverse complement that leaves IUPAC letters untouched, and a nucleotide slice of
``3 * len(protein) + 1`` letters. See ``tests/data/reference/README.md`` for the rule in words.

Why it is written over blocks: this stage runs on every window of every read, and per-window (let alone per-codon)
Python costs more than the work itself. :func:`block_frames` therefore translates all six frames of all windows of a
block of reads with a handful of numpy operations: every position of the block (and of its reverse complement) is
turned into an amino-acid byte with ONE table lookup (a base-5 codon index, 4 marking a letter other than ACGT, so a
dropped codon is simply byte 0), the frames are then strided rows of that array, and "stop-free and non-empty" is a
row-wise reduction. Only the kept frames are touched one by one, to slice out their bytes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

FRAME_NAMES = ("F1", "F2", "F3", "R1", "R2", "R3")

_BASES = "TCAG"
# Standard genetic code in TCAG order: codon index = 16*b1 + 4*b2 + b3 with T=0, C=1, A=2, G=3.
_AMINO = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
CODON_TABLE: dict[str, str] = {
    a + b + c: _AMINO[16 * i + 4 * j + k]
    for i, a in enumerate(_BASES)
    for j, b in enumerate(_BASES)
    for k, c in enumerate(_BASES)
}

# The lookup tables below are ``bytes.translate`` tables (256 bytes): one C pass over a block, about twice as fast
# as ``np.take`` with the same table.
#: Letter → base code, either case: T=0, C=1, A=2, G=3; 4 for every other byte (a codon holding it is dropped).
_code = bytearray([4]) * 256
for _i, _b in enumerate(_BASES):
    _code[ord(_b)] = _code[ord(_b.lower())] = _i
_CODE = bytes(_code)
_COMPLEMENT_BASE = (2, 3, 0, 1)  # T<->A, C<->G in TCAG codes
#: Base-5 index 25*b1 + 5*b2 + b3 of the triplet starting at a position (4 = a letter other than ACGT) → the amino-acid
#: byte of that codon (``_AMINO_FORWARD``) and of its reverse complement, the codon the minus strand reads over the
#: same three letters (``_AMINO_REVERSE``); 0 when a letter is not A/C/G/T (the original drops such codons).
_forward, _reverse = bytearray(256), bytearray(256)
for _i in range(4):
    for _j in range(4):
        for _k in range(4):
            _ci, _cj, _ck = (_COMPLEMENT_BASE[x] for x in (_i, _j, _k))
            _forward[25 * _i + 5 * _j + _k] = ord(_AMINO[16 * _i + 4 * _j + _k])
            _reverse[25 * _i + 5 * _j + _k] = ord(_AMINO[16 * _ck + 4 * _cj + _ci])
_AMINO_FORWARD, _AMINO_REVERSE = bytes(_forward), bytes(_reverse)
_STOP = ord("*")
_COMPLEMENT = bytes.maketrans(b"ACGT", b"TGCA")
_OFFSET3 = np.arange(3, dtype=np.int64)
#: Upper bound on the bases translated in one numpy pass, so memory stays bounded for reads of any length.
GROUP_BASES = 1 << 21
#: Windows sharing one length are translated together without a per-codon mask when at least this many share it.
UNIFORM_MIN = 16


@dataclass(frozen=True)
class Frame:
    """A kept (stop-free, non-empty) frame: id ``{window_id}{F1..R3}``, nucleotide slice and protein."""

    id: str
    nucleotide: str
    protein: str


@dataclass
class BlockFrames:
    """Windows and kept frames of a block of reads, in the original's order (read, window, F1..R3).

    Per read: ``windows``, ``frames`` (kept), ``tokens`` (kept frames' residues + 2 each, the ESM-2 cost) and
    ``codons`` (translatable codons over all six frames of all its windows; 0 means nothing could be translated).
    Per window: ``window_read`` (read index), ``window_number`` (k from 1), ``window_start`` (in the read) and
    ``window_length``. Per kept frame: ``frame_window`` (window index), ``frame_kind`` (0..5 = F1..R3), its
    ``nucleotides`` / ``proteins`` as upper-case ASCII bytes, and their lengths (``nucleotide_lengths`` /
    ``protein_lengths``: callers laying out records need them, and counting them again costs a pass per frame).
    """

    windows: np.ndarray
    frames: np.ndarray
    tokens: np.ndarray
    codons: np.ndarray
    window_read: np.ndarray
    window_number: np.ndarray
    window_start: np.ndarray
    window_length: np.ndarray
    frame_window: np.ndarray
    frame_kind: np.ndarray
    nucleotides: list[bytes]
    proteins: list[bytes]
    nucleotide_lengths: np.ndarray
    protein_lengths: np.ndarray


def window_table(lengths: np.ndarray | Sequence[int], chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(read index, window number from 1, start in the read, length)`` of every window of reads of ``lengths``.

    Per read of n letters: k = ceil(n/c) windows; the overlap r = k*c - n is spread by the original's integer rule:
    q = r // k, u = r - q*(k-1), shifts = u copies of q+1, then max(0, k-1-u) copies of q, then 0 (first k used), and
    window i starts at i*c minus the sum of the first i shifts. That sum is i*(q+1) while i <= u, else
    u*(q+1) + (i-u)*q, which lets every window of every read be computed at once.
    """
    n = np.asarray(lengths, dtype=np.int64)
    k = -(-n // chunk)
    r = k * chunk - n
    q = r // np.maximum(k, 1)
    u = r - q * (k - 1)
    read = np.repeat(np.arange(len(n), dtype=np.int64), k)
    i = np.arange(len(read), dtype=np.int64) - np.repeat(np.cumsum(k) - k, k)
    qq, uu = q[read], u[read]
    start = i * chunk - np.where(i <= uu, i * (qq + 1), uu * (qq + 1) + (i - uu) * qq)
    length = np.clip(n[read] - start, 0, chunk)
    return read, i + 1, start, length


def window_starts(length: int, chunk: int) -> list[int]:
    """Start offsets of the original's windows over a read of ``length`` letters (see :func:`window_table`)."""
    return window_table([max(length, 0)], chunk)[2].tolist()


def windows(read_id: str, sequence: str, chunk: int) -> Iterator[tuple[str, str]]:
    """``(window_id, window_sequence)`` pairs, case kept, ids ``{read_id}_chunk_{k}`` with k from 1."""
    _, number, start, length = window_table([len(sequence)], chunk)
    for k, s, n in zip(number.tolist(), start.tolist(), length.tolist()):
        yield f"{read_id}_chunk_{k}", sequence[s : s + n]


def reverse_complement(sequence: str) -> str:
    """The original's reverse complement: swaps A/T and C/G only; other letters (N, R, Y, ...) stay as they are."""
    return sequence.translate(str.maketrans("ACGT", "TGCA"))[::-1]


def _triplet_index(buf: bytes) -> np.ndarray:
    """Base-5 index of the triplet starting at each position 0..len-3 of ``buf`` (letters of any case)."""
    codes = np.frombuffer(buf.translate(_CODE), dtype=np.uint8)
    index = codes[:-2] * np.uint8(25)
    index += codes[1:-1] * np.uint8(5)
    index += codes[2:]
    return index


def translate(sequence: str) -> str:
    """Translate from offset 0 while three letters remain; codons with a letter other than ACGT are dropped."""
    n = len(sequence) // 3
    if n == 0:
        return ""
    amino = _triplet_index(sequence[: 3 * n].encode("ascii", "replace"))[::3].tobytes().translate(_AMINO_FORWARD)
    return amino.replace(b"\0", b"").decode("ascii")


class _Strands:
    """Amino-acid bytes of every codon of a stretch of sequence on both strands, padded so any frame row can be read
    as a strided view: forward rows step +3 from the frame's first codon, reverse rows step -3 from the forward
    position of the minus strand's first codon (the triplet whose reverse complement it is)."""

    def __init__(self, buf: bytes, width: int) -> None:
        index = _triplet_index(buf).tobytes() if len(buf) >= 3 else b""
        self.pad = pad = 3 * width + 3
        self.forward = np.frombuffer(index.translate(_AMINO_FORWARD) + bytes(pad), dtype=np.uint8)
        self.reverse = np.frombuffer(b"".join([bytes(pad), index.translate(_AMINO_REVERSE), bytes(pad)]), dtype=np.uint8)
        self.width = width

    def rows(self, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """(windows, 6, width) amino bytes of F1, F2, F3, R1, R2, R3; positions past a frame's last codon unmasked."""
        width = self.width
        n_codon = max(len(self.forward) - self.pad, 1)
        forward = as_strided(self.forward, shape=(len(self.forward) - 3 * width, width), strides=(1, 3), writeable=False)
        first = np.clip(starts[:, None] + _OFFSET3, 0, n_codon - 1)
        out = np.empty((len(starts), 6, width), dtype=np.uint8)
        out[:, :3] = forward[first]
        # minus strand, frame f: first codon over forward letters s+L-3-f, then 3 letters further back each codon
        reverse = as_strided(self.reverse[self.pad :], shape=(n_codon, width), strides=(1, -3), writeable=False)
        first = np.clip((starts + lengths - 3)[:, None] - _OFFSET3, 0, n_codon - 1)
        out[:, 3:] = reverse[first]
        return out


def _frames_of_windows(strands: _Strands, starts: np.ndarray, lengths: np.ndarray, uniform: bool):
    """Per window and frame the translatable codons; the kept (stop-free, non-empty) frames' row ids (6*window +
    kind), protein lengths and proteins (in row order, each followed by a newline, so one split makes the list)."""
    rows = strands.rows(starts, lengths)
    count = np.maximum((lengths[:, None] - np.array([0, 1, 2, 0, 1, 2])) // 3, 0)  # codons each frame really reads
    width = strands.width
    if uniform:  # one length: each frame reads a fixed number of codons, only whole columns need clearing
        for kind, c in enumerate(count[0].tolist()):
            if c < width:
                rows[:, kind, c:] = 0
    else:
        rows[np.arange(width) >= count[:, :, None]] = 0
    flat = rows.reshape(-1, width)
    # row sums of 0/1 bytes by einsum (int32: a row holds at most ``width`` codons) take half the time of
    # count_nonzero(axis=1) and of any(axis=1), which go through a bool array and a general reduction each
    valid = np.einsum("ij->i", (flat != 0).view(np.uint8), dtype=np.int32)
    stops = np.einsum("ij->i", (flat == _STOP).view(np.uint8), dtype=np.int32)
    kept = np.flatnonzero((valid > 0) & (stops == 0))
    lines = np.concatenate([flat[kept], np.full((len(kept), 1), ord("\n"), dtype=np.uint8)], axis=1)
    return valid.reshape(-1, 6), kept, valid[kept], lines[lines != 0].tobytes()


def _nucleotide_lengths(protein_len: np.ndarray, lengths: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """The original's nucleotide slice length of kept frames: ``3 * len(protein) + 1`` letters of the frame's strand
    from its offset, fewer when the window (of ``lengths`` letters) ends first."""
    return np.minimum(3 * protein_len + 1, lengths - kinds % 3)


def _nucleotides(upper: bytes, starts: np.ndarray, lengths: np.ndarray, kinds: np.ndarray, protein_len: np.ndarray) -> list[bytes]:
    """The original's nucleotide slice of each kept frame (:func:`_nucleotide_lengths` letters of the frame's strand
    from its offset), taken from the upper-cased ``upper``; on the minus strand the slice is the reverse complement of
    the matching forward letters.

    The segment is reverse-complemented once and appended to itself, so every slice (either strand) is one plain
    slice of that text: a translate and a reversal per kept minus-strand frame cost more than the slicing itself."""
    offset = kinds % 3
    n = _nucleotide_lengths(protein_len, lengths, kinds)
    forward = kinds < 3
    first = np.where(forward, starts + offset, starts + lengths - offset - n)
    size = len(upper)
    # forward letters [a, b) read backwards = both[2*size-b : 2*size-a]; numpy reverses twice as fast as a [::-1] slice
    both = upper + np.frombuffer(upper.translate(_COMPLEMENT), dtype=np.uint8)[::-1].tobytes()
    begin = np.where(forward, first, 2 * size - first - n)
    return [both[a:b] for a, b in zip(begin.tolist(), (begin + n).tolist())]


def block_frames(
    sequences: Sequence[bytes],
    chunk: int,
    group_bases: int = GROUP_BASES,
    joined: bytes | None = None,
    lengths: np.ndarray | None = None,
    upper_case: bool = False,
) -> BlockFrames:
    """Windows and stop-free frames of ``sequences`` (ASCII bytes, any case; pass ``b""`` for a read to skip).

    ``joined`` (``b"".join(sequences)``) and ``lengths`` (their lengths) may be passed when the caller has them;
    ``upper_case`` says the caller checked that no letter is lower case (the slices need no upper-cased copy)."""
    n_reads = len(sequences)
    if lengths is None:
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=n_reads)
    w_read, w_number, w_start, w_length = window_table(lengths, chunk)
    g_start = (np.cumsum(lengths) - lengths)[w_read] + w_start  # window start in the concatenated block
    buf = b"".join(sequences) if joined is None else joined
    n_windows = len(w_read)
    valid_rows = np.zeros((n_windows, 6), dtype=np.int64)
    kept_parts: list[np.ndarray] = []
    plen_parts: list[np.ndarray] = []
    protein_parts: list[bytes] = []
    nucleotide_parts: list[list[bytes]] = []
    cumulative = np.cumsum(w_length)
    first = 0
    while first < n_windows:  # stretches of whole windows of at most ~group_bases letters
        base = int(cumulative[first - 1]) if first else 0
        last = max(first + 1, int(np.searchsorted(cumulative, base + group_bases, side="right")))
        lo, hi = int(g_start[first]), int(g_start[last - 1] + w_length[last - 1])
        segment = buf if lo == 0 and hi == len(buf) else buf[lo:hi]  # a block is usually one stretch: no copy
        upper = segment if upper_case else segment.upper()
        starts, lens = g_start[first:last] - lo, w_length[first:last]
        strands = _Strands(segment, int(lens.max()) // 3)
        values, inverse, counts = np.unique(lens, return_inverse=True, return_counts=True)
        big = counts >= UNIFORM_MIN
        groups = [(np.flatnonzero(inverse == g), True) for g in np.flatnonzero(big)]
        rest = np.flatnonzero(~big[inverse])
        if len(rest):
            groups.append((rest, len(values[~big]) == 1))
        for members, uniform in groups:
            if strands.width == 0:
                continue
            valid, kept, plen, proteins = _frames_of_windows(strands, starts[members], lens[members], uniform)
            valid_rows[first + members] = valid
            window = members[kept // 6]
            kept_parts.append(6 * (first + window) + kept % 6)
            plen_parts.append(plen)
            protein_parts.append(proteins)
            nucleotide_parts.append(_nucleotides(upper, starts[window], lens[window], kept % 6, plen))
        first = last
    kept = np.concatenate(kept_parts) if kept_parts else np.zeros(0, dtype=np.int64)
    plen = np.concatenate(plen_parts) if plen_parts else np.zeros(0, dtype=np.int64)
    proteins = b"".join(protein_parts).split(b"\n")  # one C call, not a slice per frame
    proteins.pop()  # after the last newline
    nucleotides = list(itertools.chain.from_iterable(nucleotide_parts))
    if len(kept_parts) > 1:  # groups were translated apart: back to window order, F1..R3 within a window
        order = np.argsort(kept, kind="stable")
        kept, plen = kept[order], plen[order]
        order_list = order.tolist()
        proteins = [proteins[i] for i in order_list]
        nucleotides = [nucleotides[i] for i in order_list]
    frame_window = kept // 6
    frame_read = w_read[frame_window]
    frame_kind = kept % 6
    return BlockFrames(
        windows=np.bincount(w_read, minlength=n_reads),
        frames=np.bincount(frame_read, minlength=n_reads),
        tokens=np.bincount(frame_read, weights=plen + 2, minlength=n_reads).astype(np.int64),
        codons=np.bincount(w_read, weights=valid_rows.sum(axis=1), minlength=n_reads).astype(np.int64),
        window_read=w_read,
        window_number=w_number,
        window_start=w_start,
        window_length=w_length,
        frame_window=frame_window,
        frame_kind=frame_kind,
        nucleotides=nucleotides,
        proteins=proteins,
        nucleotide_lengths=_nucleotide_lengths(plen, w_length[frame_window], frame_kind),
        protein_lengths=plen,
    )


def six_frames(window_id: str, window: str) -> list[Frame]:
    """The window's stop-free frames in the original order F1, F2, F3, R1, R2, R3 (window upper-cased first)."""
    if not window:
        return []
    block = block_frames([window.encode("ascii", "replace")], len(window))
    return [
        Frame(window_id + FRAME_NAMES[kind], nuc.decode("ascii"), prot.decode("ascii"))
        for kind, nuc, prot in zip(block.frame_kind.tolist(), block.nucleotides, block.proteins)
    ]
