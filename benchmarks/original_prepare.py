"""A faithful re-creation of the original VirNucPro's per-codon prepare path, the baseline of prepare_speed.py.

What the original ``prediction.py``/``units.py`` do before embedding, step for step (the rule as documented in
tests/data/reference/README.md): ``split_fasta_chunk`` parses the input with Biopython, cuts each read into windows
and writes them with ``SeqIO.write``; then the chunk file is parsed again with Biopython, each window is upper-cased
and translated in six frames by a Python loop with one dict lookup per codon, and stop-free non-empty frames are
written to ``*_identified_nucleotide.fa`` / ``*_identified_protein.faa``. Same outputs as ``virnucpro prepare`` with
one shard (the benchmark checks that), at the original's speed. Not part of the package: benchmarks only.

Usage: python benchmarks/original_prepare.py INPUT.fa CHUNK OUTDIR
"""

from __future__ import annotations

import os
import sys

from Bio import SeqIO
from Bio.Seq import Seq
from Bio.SeqRecord import SeqRecord

_BASES = "TCAG"
_AMINO = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
CODON_TABLE = {
    a + b + c: _AMINO[16 * i + 4 * j + k]
    for i, a in enumerate(_BASES)
    for j, b in enumerate(_BASES)
    for k, c in enumerate(_BASES)
}


def split_fasta_chunk(input_file: str, output_file: str, chunk_size: int) -> None:
    """Windows of every read, by the original's overlap rule, written as the original chunk file."""
    chunks = []
    for record in SeqIO.parse(input_file, "fasta"):
        sequence = record.seq
        length = len(sequence)
        num_chunks = -(-length // chunk_size)
        total_overlap = num_chunks * chunk_size - length
        overlap = total_overlap // num_chunks if num_chunks else 0
        extra = total_overlap - overlap * (num_chunks - 1)
        shifts = ([overlap + 1] * extra + [overlap] * max(0, num_chunks - 1 - extra) + [0])[:num_chunks]
        start = 0
        for i in range(num_chunks):
            chunk = sequence[start : start + chunk_size]
            chunks.append(SeqRecord(Seq(str(chunk)), id=f"{record.id}_chunk_{i + 1}", description=""))
            start += chunk_size - shifts[i]
    SeqIO.write(chunks, output_file, "fasta")


def reverse_complement(sequence: str) -> str:
    complement = {"A": "T", "T": "A", "C": "G", "G": "C"}
    return "".join(complement.get(base, base) for base in reversed(sequence))


def translate_dna(sequence: str) -> str:
    protein = ""
    for i in range(0, len(sequence) - 2, 3):
        protein += CODON_TABLE.get(sequence[i : i + 3], "")
    return protein


def identify_seq(seqid: str, sequence: str) -> list[dict]:
    results = []
    for strand, strand_seq in (("F", sequence), ("R", reverse_complement(sequence))):
        for frame in range(3):
            protein = translate_dna(strand_seq[frame:])
            if "*" not in protein:
                results.append(
                    {
                        "seqid": f"{seqid}{strand}{frame + 1}",
                        "nucleotide": strand_seq[frame : frame + len(protein) * 3 + 1],
                        "protein": protein,
                    }
                )
    return results


def make_prepare_data(input_file: str, chunk_size: int, outdir: str) -> None:
    os.makedirs(outdir, exist_ok=True)
    chunked = os.path.join(outdir, f"chunked{chunk_size}.fa")
    split_fasta_chunk(input_file, chunked, chunk_size)
    with open(os.path.join(outdir, "identified_nucleotide.fa"), "w") as dna_out, open(
        os.path.join(outdir, "identified_protein.faa"), "w"
    ) as protein_out:
        records = list(SeqIO.parse(chunked, "fasta"))
        for record in records:
            for item in identify_seq(record.id, str(record.seq).upper()):
                if item.get("protein", "") != "":
                    dna_out.write(f">{item['seqid']}\n{item['nucleotide']}\n")
                    protein_out.write(f">{item['seqid']}\n{item['protein']}\n")


if __name__ == "__main__":
    make_prepare_data(sys.argv[1], int(sys.argv[2]), sys.argv[3])
