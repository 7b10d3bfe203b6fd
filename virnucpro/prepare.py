"""Prepare stage: FASTA → windows → stop-free frames → token-balanced paired shards, ``reads.tsv``, ``manifest.json``.

Streams the input (memory stays flat except for the set of seen ids), assigns whole reads to shards so that a read's
frames keep their original order inside one shard, and balances shards by ESM-2 tokens (protein length + BOS/EOS),
the cost that dominates embedding time. Every input read gets a row in ``reads.tsv``, with a status when it yields no
frame, so nothing is dropped silently. All files are written under temp names and renamed at the end; the manifest is
written last, so its presence means the stage completed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence, TextIO

from virnucpro import __version__
from virnucpro.atomic import atomic_text, remove_stale_temps, temp_name
from virnucpro.checksum import file_sha256
from virnucpro.errors import InputError
from virnucpro.fasta import invalid_letters, read_fasta, write_record
from virnucpro.frames import six_frames, windows
from virnucpro.progress import progress_bar

log = logging.getLogger("virnucpro.prepare")

MAX_SHARDS = 1000
READS_HEADER = ("read_id", "file", "record", "length", "windows", "frames", "tokens", "shard", "status")

#: Per-read statuses written to reads.tsv (docs/output.md explains each).
STATUS_OK = "ok"
STATUS_NO_FRAME = "no_stop_free_frame"
STATUS_TOO_SHORT = "too_short"
STATUS_EMPTY = "empty"
STATUS_INVALID = "invalid_characters"
STATUS_DUPLICATE = "duplicate_id"


def frame_tokens(protein: str) -> int:
    """Balancing cost of one frame: its ESM-2 tokens (residues + BOS + EOS)."""
    return len(protein) + 2


@dataclass
class Shard:
    """One pair of shard files being written (temp names until :meth:`finish`)."""

    index: int
    nuc_path: Path
    prot_path: Path
    frames: int = 0
    tokens: int = 0
    reads: int = 0
    _nuc: TextIO | None = field(default=None, repr=False)
    _prot: TextIO | None = field(default=None, repr=False)
    _tmp: tuple[Path, Path] | None = field(default=None, repr=False)

    def open(self) -> None:
        self._tmp = (temp_name(self.nuc_path), temp_name(self.prot_path))
        self._nuc = open(self._tmp[0], "w", encoding="utf-8", newline="\n")
        self._prot = open(self._tmp[1], "w", encoding="utf-8", newline="\n")

    def add(self, frames: Sequence, tokens: int) -> None:
        if self._nuc is None:
            self.open()
        assert self._nuc is not None and self._prot is not None
        for frame in frames:
            write_record(self._nuc, frame.id, frame.nucleotide)
            write_record(self._prot, frame.id, frame.protein)
        self.frames += len(frames)
        self.tokens += tokens
        self.reads += 1

    def finish(self) -> None:
        if self._nuc is None:
            self.open()
        assert self._nuc is not None and self._prot is not None and self._tmp is not None
        self._nuc.close()
        self._prot.close()
        self._tmp[0].replace(self.nuc_path)
        self._tmp[1].replace(self.prot_path)

    def discard(self) -> None:
        for handle in (self._nuc, self._prot):
            if handle is not None:
                handle.close()
        for path in self._tmp or ():
            path.unlink(missing_ok=True)


class ShardSet:
    """Assigns reads to shards: least-loaded of ``n`` fixed shards, or a new shard every ``tokens_per_shard``."""

    def __init__(self, outdir: Path, prefix: str, n_shards: int | None, tokens_per_shard: int | None) -> None:
        if n_shards is not None and not 1 <= n_shards <= MAX_SHARDS:
            raise InputError(f"--shards must be between 1 and {MAX_SHARDS}, got {n_shards}")
        if tokens_per_shard is not None and tokens_per_shard < 1:
            raise InputError(f"--tokens-per-shard must be positive, got {tokens_per_shard}")
        self.outdir, self.prefix = outdir, prefix
        self.tokens_per_shard = tokens_per_shard
        self.shards: list[Shard] = [self._new(i + 1) for i in range(n_shards or 1)]
        self.fixed = tokens_per_shard is None

    def _new(self, index: int) -> Shard:
        stem = f"{self.prefix}_{index:04d}"
        return Shard(index, self.outdir / f"{stem}.nuc.fa", self.outdir / f"{stem}.prot.fa")

    def add(self, frames: Sequence, tokens: int) -> int:
        """Place one read's frames; returns the 1-based shard number."""
        if self.fixed:
            shard = min(self.shards, key=lambda s: (s.tokens, s.index))
        else:
            shard = self.shards[-1]
            assert self.tokens_per_shard is not None
            if shard.frames and shard.tokens + tokens > self.tokens_per_shard:
                shard = self._new(len(self.shards) + 1)
                self.shards.append(shard)
        shard.add(frames, tokens)
        return shard.index

    def finish(self) -> list[Shard]:
        """Close and rename the shards that hold frames (always at least one, possibly empty)."""
        kept = [s for s in self.shards if s.frames] or self.shards[:1]
        for shard in self.shards:
            if shard in kept:
                shard.finish()
            else:
                shard.discard()
        return kept

    def discard(self) -> None:
        for shard in self.shards:
            shard.discard()


def prepare_parameters(chunk_length: int, n_shards: int | None, tokens_per_shard: int | None, prefix: str) -> dict:
    """The manifest's record of what decides the shards (a resumed run compares it to decide reuse)."""
    return {"chunk_length": chunk_length, "shards": n_shards, "tokens_per_shard": tokens_per_shard, "prefix": prefix}


def _read_status(sequence: str, n_frames: int, seen: bool) -> str:
    if seen:
        return STATUS_DUPLICATE
    if not sequence:
        return STATUS_EMPTY
    if invalid_letters(sequence):
        return STATUS_INVALID
    if n_frames:
        return STATUS_OK
    return STATUS_TOO_SHORT if len(sequence) < 3 else STATUS_NO_FRAME


def prepare(
    inputs: Sequence[Path],
    outdir: Path,
    chunk_length: int = 500,
    *,
    n_shards: int | None = None,
    tokens_per_shard: int | None = None,
    prefix: str = "shard",
    write_windows: bool = False,
    progress: bool = True,
) -> dict:
    """Run the prepare stage; returns the manifest (also written to ``outdir/manifest.json``)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(outdir)
    if n_shards is not None and tokens_per_shard is not None:
        raise InputError("give either --shards or --tokens-per-shard, not both")
    shards = ShardSet(outdir, prefix, n_shards, tokens_per_shard)
    seen: set[str] = set()
    counts = {"reads": 0, "windows": 0, "frames": 0, "tokens": 0}
    statuses: dict[str, int] = {}
    input_info = []
    try:
        with contextlib.ExitStack() as stack:
            reads_out = stack.enter_context(atomic_text(outdir / "reads.tsv"))
            reads_out.write("\t".join(READS_HEADER) + "\n")
            windows_out = stack.enter_context(atomic_text(outdir / "windows.fa")) if write_windows else None
            bar = stack.enter_context(progress_bar(desc="prepare", unit="read", enabled=progress))
            for path in inputs:
                records = 0
                for record in read_fasta(path):
                    records += 1
                    row = _prepare_read(record, path, chunk_length, seen, shards, windows_out)
                    reads_out.write("\t".join(map(str, row)) + "\n")
                    counts["reads"] += 1
                    counts["windows"] += row[4]
                    counts["frames"] += row[5]
                    counts["tokens"] += row[6]
                    statuses[row[-1]] = statuses.get(row[-1], 0) + 1
                    bar.update(1)
                if records == 0:
                    raise InputError(f"{path}: no FASTA records (empty file?)")
                input_info.append({"path": str(path), "sha256": file_sha256(path), "records": records})
            kept = shards.finish()
    except BaseException:
        shards.discard()
        raise
    manifest = {
        "tool": "virnucpro",
        "version": __version__,
        "stage": "prepare",
        "parameters": prepare_parameters(chunk_length, n_shards, tokens_per_shard, prefix),
        "inputs": input_info,
        "counts": counts,
        "statuses": statuses,
        "shards": [
            {
                "index": s.index,
                "nuc": s.nuc_path.name,
                "prot": s.prot_path.name,
                "reads": s.reads,
                "frames": s.frames,
                "tokens": s.tokens,
                "nuc_sha256": file_sha256(s.nuc_path),
                "prot_sha256": file_sha256(s.prot_path),
            }
            for s in kept
        ],
    }
    with atomic_text(outdir / "manifest.json") as out:
        json.dump(manifest, out, indent=2)
        out.write("\n")
    log.info(
        "prepared %d reads → %d windows → %d frames (%d tokens) in %d shard(s); statuses %s",
        counts["reads"], counts["windows"], counts["frames"], counts["tokens"], len(kept), statuses,
    )
    return manifest


def _prepare_read(record, path: Path, chunk: int, seen: set[str], shards: ShardSet, windows_out: TextIO | None) -> tuple:
    """Windows and frames of one read, placed into a shard; returns its reads.tsv row."""
    duplicate = record.id in seen
    seen.add(record.id)
    sequence = record.sequence
    n_windows, frames = 0, []
    if not duplicate and not invalid_letters(sequence):
        for window_id, window in windows(record.id, sequence, chunk):
            n_windows += 1
            if windows_out is not None:
                write_record(windows_out, window_id, window, 60)
            frames.extend(six_frames(window_id, window))
    tokens = sum(frame_tokens(f.protein) for f in frames)
    shard = shards.add(frames, tokens) if frames else 0
    status = _read_status(sequence, len(frames), duplicate)
    return (record.id, path.name, record.number, len(sequence), n_windows, len(frames), tokens, shard, status)


def read_reads_table(path: Path) -> Iterable[dict[str, str]]:
    """Stream the rows of a prepare ``reads.tsv`` as dicts (used by summarize)."""
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if tuple(header) != READS_HEADER:
            raise InputError(f"{path}: not a prepare reads.tsv (header {header[:4]}...)")
        for lineno, line in enumerate(fh, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != len(READS_HEADER):
                raise InputError(f"{path}: line {lineno}: expected {len(READS_HEADER)} columns, got {len(fields)}")
            yield dict(zip(READS_HEADER, fields))


def cli_prepare(args: argparse.Namespace) -> int:
    """``virnucpro prepare``."""
    prepare(
        args.inputs,
        args.outdir,
        args.chunk_length,
        n_shards=args.shards,
        tokens_per_shard=args.tokens_per_shard,
        prefix=args.prefix,
        write_windows=args.write_windows,
        progress=not args.quiet,
    )
    return 0
