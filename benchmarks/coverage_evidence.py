"""Evidence behind the coverage thresholds of ``virnucpro.calls``: how much of a real sequence can be scored at all.

A read's call rests on its *scored* windows (windows with at least one stop-free frame); ``coverage`` = scored
windows / windows cut. That fraction needs no model: it follows from the original's window rule and frame rule alone,
so this script runs the project's own windowing and translation (:func:`virnucpro.frames.block_frames`) over the
FASTA files in ``/work/shared/realdata`` (read in place) and over random DNA of the same lengths (random sequence
rarely has a stop-free frame of 100+ codons), and prints per file and chunk length: reads, windows per read, the
share of reads with no scored window, and percentiles of ``coverage`` among reads with at least one scored window.

Usage::

    python benchmarks/coverage_evidence.py                       # all of /work/shared/realdata, chunk 300 and 500
    python benchmarks/coverage_evidence.py --realdata DIR_OR_FILE --output coverage.json

Output: one JSON object (also written to ``--output`` when given). docs/output.md quotes its numbers.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

from virnucpro.fasta import read_fasta
from virnucpro.frames import block_frames

DEFAULT_REALDATA = Path("/work/shared/realdata")
PERCENTILES = (0.1, 1, 5, 10, 25, 50)
#: Reads translated per block_frames call (bounded memory whatever the file size).
BLOCK_READS = 200


def coverage_of(sequences: list[bytes], chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Per read: windows cut and windows with at least one stop-free frame (the prepare rule)."""
    windows, scored = [], []
    for i in range(0, len(sequences), BLOCK_READS):
        block = block_frames(sequences[i : i + BLOCK_READS], chunk)
        windows.append(block.windows)
        kept_windows = np.unique(block.frame_window)
        scored.append(np.bincount(block.window_read[kept_windows], minlength=len(block.windows)))
    return np.concatenate(windows), np.concatenate(scored)


def describe(windows: np.ndarray, scored: np.ndarray, lengths: np.ndarray) -> dict:
    """Distribution of windows per read and of coverage (reads with >= 1 scored window)."""
    cov = scored[scored > 0] / windows[scored > 0]
    out = {
        "reads": int(len(windows)),
        "length_median_bp": int(np.median(lengths)) if len(lengths) else 0,
        "windows_per_read": {"min": int(windows.min()), "median": float(np.median(windows)), "max": int(windows.max())},
        "reads_no_scored_window": int((scored == 0).sum()),
        "coverage_mean": round(float(cov.mean()), 4) if len(cov) else None,
        "coverage_percentiles": {f"p{p:g}": round(float(np.percentile(cov, p)), 4) for p in PERCENTILES} if len(cov) else {},
        "coverage_min": round(float(cov.min()), 4) if len(cov) else None,
    }
    for limit in (0.05, 0.1, 0.25):
        out[f"reads_coverage_below_{limit:g}"] = int((cov < limit).sum())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realdata", type=Path, default=DEFAULT_REALDATA, help="folder of FASTA files, or one FASTA file")
    ap.add_argument("--chunks", type=int, nargs="+", default=[300, 500])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--output", type=Path)
    args = ap.parse_args(argv)
    files = sorted(args.realdata.glob("*.fa")) if args.realdata.is_dir() else [args.realdata]
    result: dict = {"chunks": args.chunks, "files": {}}
    rng = random.Random(args.seed)
    for path in files:
        records = list(read_fasta(path))
        seqs = [r.sequence.encode("ascii", "replace") for r in records]
        lengths = np.array([len(s) for s in seqs])
        # random DNA of the same lengths: what a call looks like when the sequence carries no coding signal
        rand = ["".join(rng.choices("ACGT", k=len(s))).encode() for s in seqs]
        entry = {}
        for chunk in args.chunks:
            w, s = coverage_of(seqs, chunk)
            rw, rs = coverage_of(rand, chunk)
            entry[str(chunk)] = {"real": describe(w, s, lengths), "random_same_lengths": describe(rw, rs, lengths)}
            if len(seqs) <= 20:  # a few long sequences: list each one
                entry[str(chunk)]["per_sequence"] = [
                    {"id": r.id, "length": len(r.sequence), "windows": int(a), "scored": int(b), "coverage": round(float(b / a), 4)}
                    for r, a, b in zip(records, w, s)
                ]
        result["files"][path.name] = entry
    text = json.dumps(result, indent=1)
    if args.output:
        args.output.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
