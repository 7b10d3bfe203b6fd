"""Benchmark inputs: the production prepare stage, timed, and the production FASTA → HDF5 path over its shards.

Both are the code a run executes, so a benchmark figure is what the pipeline gets, not a re-implementation's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from virnucpro.embed import Embedder
from virnucpro.fasta import read_fasta
from virnucpro.prepare import prepare


@dataclass
class Dataset:
    """One benchmark input after the prepare stage: its shard files and the prepare measurement.

    Frames stay on disk: the end-to-end and host-only measurements read them through the engine like a run does,
    so the benchmark's own memory does not grow with the input.
    """

    name: str
    chunk_length: int
    nuc_files: list[Path]
    prot_files: list[Path]
    prepare: dict[str, Any]

    def files(self, kind: str) -> list[Path]:
        return self.nuc_files if kind == "dna" else self.prot_files

    def sequences(self, kind: str, limit: int | None = None) -> list[str]:
        """The frames of ``kind`` (at most ``limit``) read back from the shards."""
        out: list[str] = []
        for path in self.files(kind):
            for record in read_fasta(path):
                if limit is not None and len(out) >= limit:
                    return out
                out.append(record.sequence)
        return out


def run_prepare(name: str, inputs: Sequence[Path], chunk: int, workdir: Path) -> Dataset:
    """Time the production prepare stage (one process = one core); its shards stay in ``workdir`` for the embed stages."""
    outdir = workdir / f"prepare-{len(list(workdir.iterdir()))}"
    start = time.perf_counter()
    manifest = prepare(list(inputs), outdir, chunk, progress=False)
    seconds = time.perf_counter() - start
    counts = manifest["counts"]
    prot_files = [outdir / s["prot"] for s in manifest["shards"]]
    residues = sum(len(r.sequence) for path in prot_files for r in read_fasta(path))
    stats = {
        "stage": "prepare",
        "input": name,
        "chunk_length": chunk,
        "reads": counts["reads"],
        "windows": counts["windows"],
        "frames": counts["frames"],
        "frames_per_window": round(counts["frames"] / max(1, counts["windows"]), 4),
        "mean_protein_aa": round(residues / counts["frames"], 1) if counts["frames"] else 0.0,
        "seconds": round(seconds, 4),
        "reads_per_s_per_core": round(counts["reads"] / seconds, 1) if seconds > 0 else 0.0,
    }
    return Dataset(name, chunk, [outdir / s["nuc"] for s in manifest["shards"]], prot_files, stats)


def embed_fasta_files(embedder: Embedder, files: Sequence[Path], workdir: Path, tokens_per_batch: int | None) -> dict[str, Any]:
    """Run the production :meth:`Embedder.embed_fasta` over ``files`` (FASTA → HDF5, all stages), summed."""
    total: dict[str, Any] = {"sequences": 0, "tokens": 0, "seconds": 0.0, "batches": 0, "padded_tokens": 0, "oom_retries": 0}
    for i, path in enumerate(files):
        out = workdir / f"bench-{embedder.kind}-{i}.h5"
        stats = embedder.embed_fasta(path, out, tokens_per_batch=tokens_per_batch, progress=False)
        out.unlink(missing_ok=True)
        for key in total:
            total[key] += stats.get(key, 0)
    return total

