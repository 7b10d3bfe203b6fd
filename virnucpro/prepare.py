"""Prepare stage: FASTA → windows → stop-free frames → token-balanced paired shards, ``reads.tsv``, ``manifest.json``.

The stage in one place, its jobs each in a module named after it:

* the reading process cuts the input at record boundaries into blocks of about :data:`~virnucpro.fasta.BLOCK_BYTES`
  (:func:`virnucpro.fasta.read_blocks`);
* each block is parsed, translated and formatted by :func:`~virnucpro.readblock.process_block`, in this process or in
  worker processes (:mod:`virnucpro.blockrunner`, over :mod:`virnucpro.blockpool`'s shared memory), results in input
  order, so the outputs are byte-identical whatever the worker count;
* here, in input order, each block's reads are checked for duplicate ids, placed in shards (:mod:`virnucpro.shards`)
  and written, with their ``reads.tsv`` rows (:mod:`virnucpro.readstable`);
* the manifest is written last, so its presence means the stage completed.

All files are written under temp names and renamed at the end. The output folder is locked (:mod:`virnucpro.lock`)
so a ``prepare`` and a ``run`` cannot write the same folder at once. A file in which most records are not DNA (a
protein FASTA) is refused; RNA is read as T with one warning per file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

from virnucpro import __version__
from virnucpro.atomic import atomic_path, atomic_text, make_output_folder, remove_stale_temps
from virnucpro.blockrunner import BlockRunner, default_workers
from virnucpro.errors import InputError
from virnucpro.fasta import BLOCK_BYTES, read_blocks
from virnucpro.instream import STDIN, InputStream, check_input
from virnucpro.lock import folder_lock
from virnucpro.readblock import BlockResult
from virnucpro.readstable import READS_HEADER, STATUS_CODE, STATUS_DUPLICATE, STATUSES, read_reads_table, rows_text
from virnucpro.shards import ShardSet

#: What other modules import from here: the stage, and (re-exported) the reads.tsv names and the worker count.
__all__ = [
    "MAX_SHARDS",
    "READS_HEADER",
    "STATUS_DUPLICATE",
    "cli_prepare",
    "default_workers",
    "prepare",
    "prepare_parameters",
    "read_reads_table",
]

log = logging.getLogger("virnucpro.prepare")

MAX_SHARDS = 1000
#: A file in which more than this fraction of the non-empty records hold letters outside the nucleotide codes is
#: refused as "not DNA" (most likely a protein FASTA), instead of ending as a run with every read unscored.
NOT_DNA_FRACTION = 0.5


class _NoProgress:
    """What ``-q`` gets instead of a progress bar: accepts updates, shows nothing."""

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None


def _progress(enabled: bool):  # noqa: ANN202 - a tqdm-like context manager
    """The stage's progress bar; with progress off, a stand-in, so ``-q`` runs do not import tqdm at all."""
    if not enabled:
        return _NoProgress()
    from virnucpro.progress import progress_bar

    return progress_bar(desc="prepare", unit="read", enabled=True)


def prepare_parameters(chunk_length: int, n_shards: int | None, tokens_per_shard: int | None, prefix: str) -> dict:
    """The manifest's record of what decides the shards (a resumed run compares it to decide reuse)."""
    return {"chunk_length": chunk_length, "shards": n_shards, "tokens_per_shard": tokens_per_shard, "prefix": prefix}


def input_label(path: str | os.PathLike[str]) -> str:
    """The ``file`` column of reads.tsv: the file name, ``stdin`` for ``-``."""
    return "stdin" if str(path) == STDIN else Path(path).name


@dataclass
class _Totals:
    counts: dict[str, int] = field(default_factory=lambda: {"reads": 0, "windows": 0, "frames": 0, "tokens": 0})
    statuses: np.ndarray = field(default_factory=lambda: np.zeros(len(STATUSES), dtype=np.int64))
    seen: set[str] = field(default_factory=set)


def prepare(
    inputs: Sequence[Path | str],
    outdir: Path,
    chunk_length: int = 500,
    *,
    n_shards: int | None = None,
    tokens_per_shard: int | None = None,
    prefix: str = "shard",
    write_windows: bool = False,
    progress: bool = True,
    workers: int = 1,
    block_bytes: int = BLOCK_BYTES,
    allow_empty: bool = False,
) -> dict:
    """Run the prepare stage; returns the manifest (also written to ``outdir/manifest.json``).

    ``inputs`` are FASTA files (plain or gzip), ``-`` (standard input) or stream paths; ``workers`` > 1 processes
    blocks of reads in that many processes (outputs identical to ``workers=1``). ``allow_empty`` turns an input with
    no records from an error into a warning (a pipeline sample must not stop the others; its empty tables say why).
    """
    if n_shards is not None and tokens_per_shard is not None:
        raise InputError("give either --shards or --tokens-per-shard, not both")
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if n_shards is not None and not 1 <= n_shards <= MAX_SHARDS:
        raise InputError(f"--shards must be between 1 and {MAX_SHARDS}, got {n_shards}")
    if tokens_per_shard is not None and tokens_per_shard < 1:
        raise InputError(f"--tokens-per-shard must be positive, got {tokens_per_shard}")
    for path in inputs:
        check_input(path)  # a missing input or a directory is refused before anything is created
    outdir = make_output_folder(outdir)  # nothing is created before the options and inputs passed
    with folder_lock(outdir):
        remove_stale_temps(outdir)
        shards = ShardSet(outdir, prefix, n_shards, tokens_per_shard)
        runner = BlockRunner(workers, block_bytes)
        try:
            return _prepare_locked(inputs, outdir, chunk_length, shards, runner, prefix, n_shards, tokens_per_shard, write_windows, progress, block_bytes, allow_empty)
        except BaseException:
            shards.discard()
            raise
        finally:
            runner.close()


def _prepare_locked(inputs, outdir, chunk_length, shards, runner, prefix, n_shards, tokens_per_shard, write_windows, progress, block_bytes, allow_empty) -> dict:
    totals = _Totals()
    input_info = []
    with contextlib.ExitStack() as stack:
        reads_out = stack.enter_context(open(stack.enter_context(atomic_path(outdir / "reads.tsv")), "wb"))
        reads_out.write(("\t".join(READS_HEADER) + "\n").encode())
        windows_out: BinaryIO | None = None
        if write_windows:
            windows_out = stack.enter_context(open(stack.enter_context(atomic_path(outdir / "windows.fa")), "wb"))
        bar = stack.enter_context(_progress(progress))
        for path in inputs:
            label = input_label(path)
            records = rna = not_dna = nonempty = 0
            example, gaps = "", False
            with InputStream(path) as stream:
                blocks = read_blocks(stream, block_bytes)
                for result in runner.map(blocks, chunk_length, label, write_windows, shards.single):
                    _take(result, label, shards, totals, reads_out, windows_out)
                    n = len(result.ids)
                    records += n
                    rna += result.rna_reads
                    not_dna += result.not_dna
                    nonempty += result.nonempty
                    if not example:
                        example, gaps = result.not_dna_example, result.not_dna_gaps
                    bar.update(n)
                name = stream.name
                if records == 0 and not allow_empty:
                    raise InputError(f"{name}: no FASTA records (empty file?)")
                if records == 0:
                    log.warning("%s: no FASTA records; recorded with 0 reads (--allow-empty)", name)
                if not_dna > NOT_DNA_FRACTION * nonempty and gaps:
                    raise InputError(
                        f"{name}: {not_dna} of {nonempty} records hold alignment gaps ({example}); VirNucPro needs "
                        "unaligned sequences: remove the gaps first (e.g. seqkit seq -g)"
                    )
                if not_dna > NOT_DNA_FRACTION * nonempty:
                    raise InputError(
                        f"{name}: {not_dna} of {nonempty} records hold letters that are not nucleotide codes "
                        f"({example}); is this a protein FASTA? VirNucPro needs DNA (or RNA) sequences"
                    )
                if rna:
                    log.warning("%s: %d read(s) contain U (RNA); U was read as T for windows, frames and embeddings", name, rna)
                input_info.append({"path": str(path), "sha256": stream.sha256(), "records": records, "rna_reads": rna})
        kept = shards.finish()
    counts = totals.counts
    statuses = {name: int(c) for name, c in zip(STATUSES, totals.statuses.tolist()) if c}
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
                "nuc_sha256": s.nuc_sha256.hexdigest(),
                "prot_sha256": s.prot_sha256.hexdigest(),
            }
            for s in kept
        ],
    }
    with atomic_text(outdir / "manifest.json") as out:
        json.dump(manifest, out, indent=2)
        out.write("\n")
    log.info(
        "prepared %d reads → %d windows → %d frames (%d tokens) in %d shard(s); statuses %s",
        counts["reads"], counts["windows"], counts["frames"], counts["tokens"], len(kept),
        ", ".join(f"{name} {n}" for name, n in statuses.items()) or "none",
    )
    return manifest


def _take(result: BlockResult, label: str, shards: ShardSet, totals: _Totals, reads_out: BinaryIO, windows_out: BinaryIO | None) -> None:
    """Place one processed block: duplicate ids, shard choice, and the writes, in input order.

    Per-read Python runs only where the choice is per read (several shards) or a duplicate id was found."""
    ids = result.ids
    n = len(ids)
    seen = totals.seen
    duplicate: np.ndarray | None = None
    if len(set(ids)) == n and seen.isdisjoint(ids):
        seen.update(ids)
    else:
        duplicate = np.zeros(n, dtype=bool)
        for i, rid in enumerate(ids):
            if rid in seen:
                duplicate[i] = True
            else:
                seen.add(rid)
    windows, frames, tokens, status = result.windows, result.frames, result.tokens, result.status
    if duplicate is not None:  # a duplicate is listed, never windowed or scored again
        windows, frames, tokens, status = (np.where(duplicate, 0, a) for a in (windows, frames, tokens, status))
        status[duplicate] = STATUS_CODE[STATUS_DUPLICATE]
    counts = totals.counts
    counts["reads"] += n
    counts["windows"] += int(windows.sum())
    counts["frames"] += int(frames.sum())
    counts["tokens"] += int(tokens.sum())
    totals.statuses += np.bincount(status, minlength=len(STATUSES))

    if duplicate is None and shards.single:  # the common case: the block's own formatting is final
        reads_out.write(result.rows)
        with_frames = int(np.count_nonzero(frames))
        if with_frames:
            shard = shards.shards[0]
            shard.frames += int(frames.sum())
            shard.tokens += int(tokens.sum())
            shard.reads += with_frames
            shard.write(result.nuc, result.prot)
        if windows_out is not None:
            windows_out.write(result.windows_text)
        return

    shard_of = np.zeros(n, dtype=np.int64)
    parts: dict[int, tuple[list[bytes], list[bytes]]] = {}
    nuc_ends, prot_ends = result.nuc_ends.tolist(), result.prot_ends.tolist()
    placed = np.flatnonzero(frames)
    chosen = shards.assign_many(frames[placed].tolist(), tokens[placed].tolist())
    shard_of[placed] = chosen
    for i, index in zip(placed.tolist(), chosen):
        nuc, prot = parts.setdefault(index, ([], []))
        nuc.append(result.nuc[nuc_ends[i] : nuc_ends[i + 1]])
        prot.append(result.prot[prot_ends[i] : prot_ends[i + 1]])
    for index, (nuc, prot) in parts.items():
        shards.shards[index - 1].write(b"".join(nuc), b"".join(prot))
    if windows_out is not None:
        if duplicate is None:
            windows_out.write(result.windows_text)
        else:
            ends = result.windows_ends.tolist()
            windows_out.write(b"".join(result.windows_text[ends[i] : ends[i + 1]] for i in np.flatnonzero(~duplicate).tolist()))
    reads_out.write(rows_text(ids, label, result.first_record, result.lengths, windows, frames, tokens, shard_of, status))


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
        workers=default_workers() if getattr(args, "workers", None) is None else args.workers,
        allow_empty=args.allow_empty,
    )
    return 0
