"""Synthetic reads for benchmarks: random DNA that still yields frames, so the embedding stages have work.

Random DNA has almost no stop-free frame of 100+ codons, so a benchmark on it would embed nothing. Each synthetic read
carries one stop-free reading frame on a random strand and offset, which gives about one frame per window, in the band
of real data (0.5–1.2, see ``shared/realdata/README.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from virnucpro.fasta import write_record
from virnucpro.frames import CODON_TABLE, reverse_complement

_SENSE_CODONS = np.array(sorted(c for c, aa in CODON_TABLE.items() if aa != "*"))


def synthetic_read(length: int, rng: np.random.Generator) -> str:
    """Random DNA of ``length`` bp carrying one stop-free reading frame (random strand, offset 0-2) end to end.

    Every window of the read then keeps that frame, whatever its start, so frames/window is ~1 (real data: 0.5-1.2);
    other frames are random and almost always hold a stop.
    """
    offset = int(rng.integers(0, 3))
    n_codons = -(-(length - offset) // 3)
    lead = "".join(rng.choice(list("ACGT"), size=offset))
    coding = (lead + "".join(rng.choice(_SENSE_CODONS, size=n_codons)))[:length]
    return coding if rng.random() < 0.5 else reverse_complement(coding)


def write_synthetic_fasta(path: Path, n_reads: int, length: int, seed: int = 0) -> Path:
    """``n_reads`` synthetic reads of ``length`` bp (ids ``syn{length}_{i}``) into ``path``; deterministic by seed."""
    rng = np.random.default_rng(seed + length)
    with open(path, "w", encoding="ascii") as out:
        for i in range(n_reads):
            write_record(out, f"syn{length}_{i}", synthetic_read(length, rng), 60)
    return path


def chunk_for_read_length(read_length: int) -> int:
    """The chunk length a run would choose: 300 for short reads (≤300 bp), else 500."""
    return 300 if read_length <= 300 else 500

