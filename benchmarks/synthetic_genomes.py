#!/usr/bin/env python
"""Write the benchmark input carried in the repository: 3 kb fragments of simulated genomes, seeded and reproducible.

Why simulated: the real sequences in ``shared/realdata`` may not be copied into the repository, and the GPU script
must run on a fresh machine without them; random DNA, on the other hand, has almost no stop-free frame and would
give the embedding stages nothing to do. These fragments are built like prokaryotic and viral DNA: genes (open
reading frames of exponentially distributed length, mean ``--gene-bp``) on a random strand, back to back with short
intergenic spacers, over a genome-wide GC content drawn per genome. Coding GC shapes the other frames too: the
stop codons are AT-rich, so GC-rich DNA keeps more stop-free frames, as real genomes do.

The defaults were tuned so that the original's windowing and frame rule give what ``shared/realdata/README.md``
measures for its 3 kb fragments (virus_3kb.fa / host_3kb.fa): 0.87-1.19 frames per 300 bp window of ~99 aa and
0.54-0.78 per 500 bp window of ~166 aa; ``tests/test_benchmark_scripts.py`` checks the file against both the
generator (byte for byte after decompression) and that table.

    python benchmarks/synthetic_genomes.py --output benchmarks/data/synthetic_genomes.fa.gz
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
from pathlib import Path

import numpy as np

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "data" / "synthetic_genomes.fa.gz"
_BASES = np.array(list("ACGT"))
_COMPLEMENT = str.maketrans("ACGT", "TGCA")
_STOPS = {"TAA", "TAG", "TGA"}


def _codons(gc: float) -> tuple[list[str], np.ndarray]:
    """Sense codons and their probabilities when each position is G/C with probability ``gc``."""
    p = {"A": (1 - gc) / 2, "T": (1 - gc) / 2, "C": gc / 2, "G": gc / 2}
    sense = [a + b + c for a in "ACGT" for b in "ACGT" for c in "ACGT" if a + b + c not in _STOPS]
    weights = np.array([p[c[0]] * p[c[1]] * p[c[2]] for c in sense])
    return sense, weights / weights.sum()


def genome(length: int, gc: float, gene_bp: float, spacer_bp: float, rng: np.random.Generator) -> str:
    """``length`` bp of genes (stop-free frames closed by a stop codon) on random strands, with spacers between."""
    sense, weights = _codons(gc)
    base_p = np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])
    parts, size = [], 0
    while size < length:
        codons = max(30, int(rng.exponential(gene_bp) / 3))
        gene = "ATG" + "".join(np.asarray(sense)[rng.choice(len(sense), codons, p=weights)]) + str(rng.choice(["TAA", "TAG", "TGA"]))
        if rng.random() < 0.5:
            gene = gene.translate(_COMPLEMENT)[::-1]
        spacer = "".join(rng.choice(_BASES, int(rng.exponential(spacer_bp)), p=base_p))
        parts.append(spacer + gene)
        size += len(spacer) + len(gene)
    return "".join(parts)


def fragments(n: int, length: int, gene_bp: float, spacer_bp: float, gc_range: tuple[float, float], seed: int) -> list[tuple[str, str]]:
    """``n`` (id, sequence) fragments of ``length`` bp, each from its own simulated genome."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        gc = float(rng.uniform(*gc_range))
        sequence = genome(length + 3000, gc, gene_bp, spacer_bp, rng)
        start = int(rng.integers(0, len(sequence) - length + 1))
        out.append((f"simgenome_{i} gc={gc:.2f}", sequence[start : start + length]))
    return out


def fasta_text(records: list[tuple[str, str]], width: int = 60) -> str:
    """FASTA text, ``width`` letters per line."""
    out = io.StringIO()
    for name, sequence in records:
        out.write(f">{name}\n")
        for start in range(0, len(sequence), width):
            out.write(sequence[start : start + width] + "\n")
    return out.getvalue()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="FASTA, gzip-compressed when it ends in .gz")
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--length", type=int, default=3000)
    p.add_argument("--gene-bp", type=float, default=1000.0, help="mean gene length (exponential)")
    p.add_argument("--spacer-bp", type=float, default=60.0, help="mean intergenic spacer (exponential)")
    p.add_argument("--gc", type=float, nargs=2, default=(0.40, 0.72), help="range of genome GC content (uniform)")
    p.add_argument("--seed", type=int, default=2026)
    return p


def generate(args: argparse.Namespace) -> str:
    """The FASTA text the arguments describe (deterministic)."""
    return fasta_text(fragments(args.records, args.length, args.gene_bp, args.spacer_bp, tuple(args.gc), args.seed))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    data = generate(args).encode("ascii")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.output.suffix == ".gz":  # mtime 0 and no name: the same bytes on every run
        with open(args.output, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
            out.write(data)
    else:
        args.output.write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
