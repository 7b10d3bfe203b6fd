"""The original VirNucPro window rule and six-frame translation, reproduced quirk for quirk.

The published classifiers were trained on features computed exactly this way, so the quirks stay: the overlap
rule that usually leaves the last window shorter than the chunk length, codons with ambiguous letters dropped rather
than translated to X, a reverse complement that leaves IUPAC letters untouched, and a nucleotide slice of
``3 * len(protein) + 1`` letters. See ``tests/data/reference/README.md`` for the rule in words.

Translation is vectorised with numpy (a codon-index lookup table), not a Python loop over codons, because this stage
runs on every window of every read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

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

_CODE = np.full(256, 4, dtype=np.uint8)  # 4 = not A/C/G/T: a codon holding it is dropped
for _i, _b in enumerate(_BASES):
    _CODE[ord(_b)] = _i
_AMINO_BYTES = np.frombuffer(_AMINO.encode("ascii"), dtype=np.uint8)
_COMPLEMENT = str.maketrans("ACGT", "TGCA")


@dataclass(frozen=True)
class Frame:
    """A kept (stop-free, non-empty) frame: id ``{window_id}{F1..R3}``, nucleotide slice and protein."""

    id: str
    nucleotide: str
    protein: str


def window_starts(length: int, chunk: int) -> list[int]:
    """Start offsets of the original's windows over a read of ``length`` letters (each window takes ``chunk``).

    k = ceil(length/chunk) windows; the overlap r = k*chunk - length is spread by the original's integer rule:
    u copies of q+1, then max(0, k-1-u) copies of q, then 0, of which the first k are the shifts.
    """
    if length <= 0:
        return []
    k = -(-length // chunk)
    r = k * chunk - length
    q = r // k
    u = r - q * (k - 1)
    shifts = ([q + 1] * u + [q] * max(0, k - 1 - u) + [0])[:k]
    starts, shifted = [], 0
    for i in range(k):
        starts.append(i * chunk - shifted)
        shifted += shifts[i]
    return starts


def windows(read_id: str, sequence: str, chunk: int) -> Iterator[tuple[str, str]]:
    """``(window_id, window_sequence)`` pairs, case kept, ids ``{read_id}_chunk_{k}`` with k from 1."""
    for k, start in enumerate(window_starts(len(sequence), chunk), start=1):
        yield f"{read_id}_chunk_{k}", sequence[start : start + chunk]


def reverse_complement(sequence: str) -> str:
    """The original's reverse complement: swaps A/T and C/G only; other letters (N, R, Y, ...) stay as they are."""
    return sequence.translate(_COMPLEMENT)[::-1]


def translate(sequence: str) -> str:
    """Translate from offset 0 while three letters remain; codons with a letter other than ACGT are dropped."""
    n = len(sequence) // 3
    if n == 0:
        return ""
    codes = _CODE[np.frombuffer(sequence[: 3 * n].encode("ascii", "replace"), dtype=np.uint8)].reshape(n, 3)
    valid = (codes < 4).all(axis=1)
    index = codes[valid].astype(np.int64) @ np.array([16, 4, 1], dtype=np.int64)
    return _AMINO_BYTES[index].tobytes().decode("ascii")


def six_frames(window_id: str, window: str) -> list[Frame]:
    """The window's stop-free frames in the original order F1, F2, F3, R1, R2, R3 (window upper-cased first)."""
    upper = window.upper()
    kept: list[Frame] = []
    for strand, names in ((upper, FRAME_NAMES[:3]), (reverse_complement(upper), FRAME_NAMES[3:])):
        for offset, name in enumerate(names):
            protein = translate(strand[offset:])
            if protein and "*" not in protein:
                nucleotide = strand[offset : offset + 3 * len(protein) + 1]
                kept.append(Frame(window_id + name, nucleotide, protein))
    return kept
