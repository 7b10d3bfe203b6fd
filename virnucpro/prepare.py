"""Prepare stage: FASTA → windows → stop-free frames → token-balanced paired shards, ``reads.tsv``, ``manifest.json``.

Reads are processed a block at a time (about :data:`~virnucpro.fasta.BLOCK_BYTES` of FASTA): the reading process
cuts the input at record boundaries, :func:`process_block` parses a block, translates all its windows at once
(:func:`virnucpro.frames.block_frames`) and formats its shard records and ``reads.tsv`` rows, and the reading process
then assigns whole reads to shards in input order. With ``workers`` > 1 the blocks are processed by a pool of
processes while the reading process keeps the order, so the outputs are byte-identical whatever the worker count,
and memory stays at a few blocks per worker (plus the set of seen ids) whatever the input size. Blocks and their
formatted records travel between the processes through shared memory (:mod:`virnucpro.blockpool`).

Shards are balanced by ESM-2 tokens (protein length + BOS/EOS), the cost that dominates embedding time; a read's
frames stay together and in their original order inside one shard. Every input read gets a row in ``reads.tsv``, with
a status when it yields no frame, so nothing is dropped silently. All files are written under temp names and renamed
at the end; the manifest is written last, so its presence means the stage completed. The output folder is locked
(:mod:`virnucpro.lock`) so a ``prepare`` and a ``run`` cannot write the same folder at once.

Input that is not what it claims is handled loudly: RNA (U) is read as T with a counted warning per file; a file in
which most records hold letters that are no nucleotide codes (a protein FASTA) is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import heapq
import itertools
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Iterable, Iterator, Sequence, Union

import numpy as np

from virnucpro import __version__
from virnucpro.atomic import atomic_path, atomic_text, make_output_folder, names_path, remove_stale_temps, temp_name
from virnucpro.errors import InputError
from virnucpro.fasta import BLOCK_BYTES, DNA_LETTERS, STDIN, InputStream, RawBlock, check_input, invalid_letters, parse_block, read_blocks
from virnucpro.frames import FRAME_NAMES, block_frames
from virnucpro.lock import folder_lock

if TYPE_CHECKING:
    from virnucpro.blockpool import BlockPool

log = logging.getLogger("virnucpro.prepare")

MAX_SHARDS = 1000
READS_HEADER = ("read_id", "file", "record", "length", "windows", "frames", "tokens", "shard", "status")

#: Per-read statuses written to reads.tsv (docs/output.md explains each).
STATUS_OK = "ok"
STATUS_NO_FRAME = "no_stop_free_frame"
STATUS_NO_CODON = "no_translatable_codon"
STATUS_TOO_SHORT = "too_short"
STATUS_EMPTY = "empty"
STATUS_INVALID = "invalid_characters"
STATUS_DUPLICATE = "duplicate_id"
#: Status codes used inside a block (index into this tuple); also the order of ``statuses`` in the manifest.
STATUSES = (STATUS_OK, STATUS_NO_FRAME, STATUS_NO_CODON, STATUS_TOO_SHORT, STATUS_EMPTY, STATUS_INVALID, STATUS_DUPLICATE)
_CODE = {name: i for i, name in enumerate(STATUSES)}

#: A file in which more than this fraction of the non-empty records hold letters outside the nucleotide codes is
#: refused as "not DNA" (most likely a protein FASTA), instead of ending as a run with every read unscored.
NOT_DNA_FRACTION = 0.5

# Letter class of every byte: 0 a nucleotide code (DNA_LETTERS without U), 1 U/u (RNA, read as T), 2 anything else.
_LETTER_CLASS = np.full(256, 2, dtype=np.uint8)
for _c in DNA_LETTERS:
    _LETTER_CLASS[ord(_c)] = 1 if _c in "Uu" else 0
_U_TO_T = bytes.maketrans(b"Uu", b"Tt")
_DNA_BYTES = "".join(sorted(DNA_LETTERS - set("Uu"))).encode("ascii")
_HEADER_TAIL = tuple(f"{name}\n".encode() for name in FRAME_NAMES)
#: Shared-memory slot of a worker, in blocks: room for a block, or for its formatted records (usually 1-2x the block;
#: a result that does not fit travels pickled, correct but slower).
SLOT_FACTOR = 4
_WRAP = 60  # windows.fa is wrapped like Biopython's FASTA writer, as the original chunk file


def frame_tokens(protein: str) -> int:
    """Balancing cost of one frame: its ESM-2 tokens (residues + BOS + EOS)."""
    return len(protein) + 2


#: Cap of the automatic worker count: past it the reading process (ordering, shard writes) is the bottleneck, and a
#: scheduler that does not pin CPUs (Docker without --cpuset) would otherwise see every core of the host.
MAX_AUTO_WORKERS = 8


def default_workers() -> int:
    """Every core this process may use (its CPU affinity: taskset, cpusets), at most :data:`MAX_AUTO_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_AUTO_WORKERS))


# --------------------------------------------------------------------------------------------------------------------
# One block of reads (runs in a worker process when workers > 1)


Bytes = Union[bytes, memoryview]


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
    nuc: Bytes
    prot: Bytes
    nuc_ends: np.ndarray
    prot_ends: np.ndarray
    windows_text: Bytes
    windows_ends: np.ndarray
    rows: Bytes
    rna_reads: int
    not_dna: int
    nonempty: int
    not_dna_example: str


def _letter_classes(joined: bytes, lengths: np.ndarray) -> np.ndarray:
    """Per read, the worst letter class it holds (0 DNA, 1 has U, 2 has other letters); 0 for empty reads.

    ``joined`` is the block's sequences end to end. One C pass settles the usual block with nothing but nucleotide
    codes; only a block holding something else is classified read by read.
    """
    worst = np.zeros(len(lengths), dtype=np.uint8)
    if not joined.translate(None, _DNA_BYTES):
        return worst
    nonempty = lengths > 0
    classes = _LETTER_CLASS[np.frombuffer(joined, dtype=np.uint8)]
    starts = (np.cumsum(lengths) - lengths)[nonempty]
    worst[nonempty] = np.maximum.reduceat(classes, starts)
    return worst


def _gather(items: Sequence, index: np.ndarray) -> list:
    """``[items[i] for i in index]`` as one numpy gather (an object array) instead of a Python loop."""
    table = np.empty(len(items), dtype=object)
    table[:] = items
    return table[index].tolist()


def _records_text(header: list[list[bytes]], header_sizes: np.ndarray, sequences: list[bytes]) -> tuple[bytes, np.ndarray]:
    """FASTA text of records (header line made of the pieces ``header[0][i] + header[1][i] + ...``, newline
    included, then one sequence line) and the end offset of each record. The pieces are interleaved by slice
    assignment and joined once: no per-record Python."""
    if not sequences:
        return b"", np.zeros(0, dtype=np.int64)
    step = len(header) + 2
    parts: list[bytes] = [b"\n"] * (step * len(sequences))
    for j, pieces in enumerate(header):
        parts[j::step] = pieces
    parts[len(header) :: step] = sequences
    sizes = header_sizes + np.fromiter(map(len, sequences), np.int64, len(sequences)) + 1
    return b"".join(parts), np.cumsum(sizes)


def _per_read_ends(record_ends: np.ndarray, per_read: np.ndarray) -> np.ndarray:
    """Offsets [0, end of read 1, end of read 2, ...] given each record's end and the records per read."""
    ends = np.concatenate([[0], record_ends])
    return ends[np.concatenate([[0], np.cumsum(per_read)])]


def _rows_text(ids: list[str], label: str, first_record: int, *columns: np.ndarray) -> bytes:
    """reads.tsv rows (UTF-8): id, file, record number, then ``columns`` (length, windows, frames, tokens, shard,
    status code).

    The numeric tail of a row repeats a lot within a block (reads of one length give few distinct window/frame/token
    counts), so each distinct tail is formatted once (``np.unique`` over the rows) and gathered back; the row pieces
    are then interleaved and joined once: this is the per-read cost of the stage, worth keeping out of Python loops.
    """
    n = len(ids)
    if not n:
        return b""
    key = np.zeros(n, dtype=np.int64)  # rank of each row's tail among the distinct tails, built column by column
    for column in columns:  # (1-D sorts: np.unique over whole rows sorts records, many times slower)
        values, rank = np.unique(column, return_inverse=True)
        key = np.unique(key * len(values) + rank.reshape(-1), return_inverse=True)[1].reshape(-1)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    distinct = np.stack(columns, axis=1)[first].tolist()
    tails = ["\t" + "\t".join(map(str, row[:-1])) + f"\t{STATUSES[row[-1]]}\n" for row in distinct]
    parts: list[str] = [f"\t{label}\t"] * (4 * n)
    parts[0::4] = ids
    parts[2::4] = map(str, range(first_record, first_record + n))
    parts[3::4] = _gather(tails, inverse.reshape(-1))
    return "".join(parts).encode("utf-8")


def process_block(block: RawBlock, chunk: int, label: str, write_windows: bool, rows: bool) -> BlockResult:
    """Parse, check, window, translate and format one block of reads (pure: depends on its arguments only)."""
    parsed = parse_block(block)
    ids, sequences = parsed.ids, parsed.sequences
    n = len(ids)
    lengths = np.fromiter(map(len, sequences), np.int64, n)
    joined = b"".join(sequences)
    worst = _letter_classes(joined, lengths)
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
    frames = block_frames(work, chunk, joined=joined, lengths=lengths if work is sequences else None)

    status = np.full(n, _CODE[STATUS_NO_FRAME], dtype=np.uint8)
    status[frames.codons == 0] = _CODE[STATUS_NO_CODON]
    status[lengths < 3] = _CODE[STATUS_TOO_SHORT]
    status[frames.frames > 0] = _CODE[STATUS_OK]
    status[worst == 2] = _CODE[STATUS_INVALID]
    status[lengths == 0] = _CODE[STATUS_EMPTY]

    # a frame's header ">{id}_chunk_{k}F1\n" is gathered from three short lists (">id" per read, "_chunk_k" per k,
    # "F1\n".."R3\n" per kind) rather than formatted frame by frame; the ">id" pieces come from one encode and split
    heads = (">" + "\n>".join(ids)).encode("utf-8").split(b"\n") if n else []
    numbers = [b"_chunk_%d" % k for k in range(1, int(frames.windows.max(initial=0)) + 1)]
    frame_read = frames.window_read[frames.frame_window]
    frame_number = frames.window_number[frames.frame_window] - 1
    header = [_gather(heads, frame_read), _gather(numbers, frame_number), _gather(_HEADER_TAIL, frames.frame_kind)]
    header_sizes = (
        np.fromiter(map(len, heads), np.int64, n)[frame_read]
        + np.fromiter(map(len, numbers), np.int64, len(numbers))[frame_number]
        + len(_HEADER_TAIL[0])
    )
    nuc, nuc_record_ends = _records_text(header, header_sizes, frames.nucleotides)
    prot, prot_record_ends = _records_text(header, header_sizes, frames.proteins)

    windows_text, windows_ends = b"", np.zeros(n + 1, dtype=np.int64)
    if write_windows:
        pieces: list[bytes] = []
        for r, k, start, length in zip(
            frames.window_read.tolist(), frames.window_number.tolist(), frames.window_start.tolist(), frames.window_length.tolist()
        ):
            window = work[r][start : start + length]
            pieces.append(b"%s_chunk_%d\n%s\n" % (heads[r], k, b"\n".join(window[j : j + _WRAP] for j in range(0, length, _WRAP))))
        windows_text = b"".join(pieces)
        sizes = np.fromiter(map(len, pieces), np.int64, len(pieces))
        windows_ends = _per_read_ends(np.cumsum(sizes), frames.windows)

    text = b""
    if rows:
        shard = (frames.frames > 0).astype(np.int64)
        text = _rows_text(ids, label, block.first_record, lengths, frames.windows, frames.frames, frames.tokens, shard, status)

    not_dna = np.flatnonzero(worst == 2)
    example = ""
    if len(not_dna):
        i = int(not_dna[0])
        letters = invalid_letters(sequences[i].decode("utf-8", "replace"))
        example = f"e.g. record {block.first_record + i} ({ids[i]}) has {letters[:12]!r}"
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
    )


def _start_method():  # noqa: ANN202 - a multiprocessing context
    """``fork`` (workers ready in milliseconds, nothing re-imported) when no other thread could hold a lock at fork
    time and torch, whose thread pools do not survive a fork, is not loaded; ``spawn`` otherwise (``virnucpro run``).
    tqdm's monitor thread only sleeps and the workers never touch tqdm, so it does not count."""
    from multiprocessing import get_context  # imported when needed: start-up time counts for small inputs

    others = [t for t in threading.enumerate() if t is not threading.main_thread() and t.name != "tqdm_monitor"]
    if sys.platform.startswith("linux") and not others and "torch" not in sys.modules:
        return get_context("fork")
    return get_context("spawn")


class BlockRunner:
    """Runs :func:`process_block` over a stream of blocks, results in input order, in this process or in a
    :class:`~virnucpro.blockpool.BlockPool` of ``workers`` processes.

    The pool starts only when an input has a second block, so small inputs never pay for it; while it starts, this
    process handles the first block.
    """

    def __init__(self, workers: int, block_bytes: int = BLOCK_BYTES) -> None:
        self.workers = max(1, int(workers))
        self.block_bytes = block_bytes
        self._pool: BlockPool | None = None
        self._context = _start_method()  # decided before this stage starts threads of its own

    def _executor(self) -> BlockPool:
        if self._pool is None:
            from virnucpro.blockpool import BlockPool

            self._pool = BlockPool(self.workers, self._context, SLOT_FACTOR * self.block_bytes)
        return self._pool

    def map(self, blocks: Iterable[RawBlock], *args: object) -> Iterator[BlockResult]:
        it = iter(blocks)
        first = next(it, None)
        if first is None:
            return
        second = next(it, None) if self.workers > 1 else None
        if second is None:
            yield process_block(first, *args)  # type: ignore[arg-type]
            for block in it:
                yield process_block(block, *args)  # type: ignore[arg-type]
            return
        results = self._executor().map(process_block, itertools.chain([second], it), *args)  # submits right away
        yield process_block(first, *args)  # type: ignore[arg-type]
        yield from results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


# --------------------------------------------------------------------------------------------------------------------
# Shards


@dataclass
class Shard:
    """One pair of shard files being written (temp names until :meth:`finish`)."""

    index: int
    nuc_path: Path
    prot_path: Path
    frames: int = 0
    tokens: int = 0
    reads: int = 0
    _nuc: BinaryIO | None = field(default=None, repr=False)
    _prot: BinaryIO | None = field(default=None, repr=False)
    _tmp: tuple[Path, Path] | None = field(default=None, repr=False)
    # checksums of what is written, so the manifest needs no second read of the shard files
    nuc_sha256: Any = field(default_factory=hashlib.sha256, repr=False)
    prot_sha256: Any = field(default_factory=hashlib.sha256, repr=False)

    def open(self) -> None:
        self._tmp = (temp_name(self.nuc_path), temp_name(self.prot_path))
        with names_path(self.nuc_path):
            self._nuc = open(self._tmp[0], "wb")
            self._prot = open(self._tmp[1], "wb")

    def write(self, nuc: Bytes, prot: Bytes) -> None:
        if self._nuc is None:
            self.open()
        assert self._nuc is not None and self._prot is not None
        with names_path(self.nuc_path):
            self._nuc.write(nuc)
            self._prot.write(prot)
        self.nuc_sha256.update(nuc)
        self.prot_sha256.update(prot)

    def finish(self) -> None:
        if self._nuc is None:
            self.open()
        assert self._nuc is not None and self._prot is not None and self._tmp is not None
        with names_path(self.nuc_path):
            self._nuc.close()
            self._prot.close()
            self._tmp[0].replace(self.nuc_path)
            self._tmp[1].replace(self.prot_path)

    def discard(self) -> None:
        for handle in (self._nuc, self._prot):
            if handle is not None:
                with contextlib.suppress(OSError):
                    handle.close()
        for path in self._tmp or ():
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


class ShardSet:
    """Assigns reads to shards: least-loaded of ``n`` fixed shards (ties: lowest index), or a new shard every
    ``tokens_per_shard``. The least-loaded shard comes from a heap, so 1000 shards cost no more per read than one."""

    def __init__(self, outdir: Path, prefix: str, n_shards: int | None, tokens_per_shard: int | None) -> None:
        self.outdir, self.prefix = outdir, prefix
        self.tokens_per_shard = tokens_per_shard
        self.shards: list[Shard] = [self._new(i + 1) for i in range(n_shards or 1)]
        self.fixed = tokens_per_shard is None
        self.single = self.fixed and len(self.shards) == 1
        self._heap = [(0, s.index) for s in self.shards]

    def _new(self, index: int) -> Shard:
        stem = f"{self.prefix}_{index:04d}"
        return Shard(index, self.outdir / f"{stem}.nuc.fa", self.outdir / f"{stem}.prot.fa")

    def assign(self, frames: int, tokens: int) -> int:
        """Choose the shard of one read with ``frames`` > 0 frames worth ``tokens``; returns its 1-based number."""
        if self.fixed:
            load, index = heapq.heappop(self._heap)
            heapq.heappush(self._heap, (load + tokens, index))
            shard = self.shards[index - 1]
        else:
            shard = self.shards[-1]
            assert self.tokens_per_shard is not None
            if shard.frames and shard.tokens + tokens > self.tokens_per_shard:
                shard = self._new(len(self.shards) + 1)
                self.shards.append(shard)
        shard.frames += frames
        shard.tokens += tokens
        shard.reads += 1
        return shard.index

    def assign_many(self, frames: list[int], tokens: list[int]) -> list[int]:
        """:meth:`assign` for consecutive reads (each with frames), in order; the same choices, one call per block."""
        if not self.fixed:
            return [self.assign(f, t) for f, t in zip(frames, tokens)]
        heap, pop, push = self._heap, heapq.heappop, heapq.heappush
        chosen = []
        for t in tokens:
            load, index = pop(heap)
            push(heap, (load + t, index))
            chosen.append(index)
        for index, f, t in zip(chosen, frames, tokens):
            shard = self.shards[index - 1]
            shard.frames += f
            shard.tokens += t
            shard.reads += 1
        return chosen

    def finish(self) -> list[Shard]:
        """Close and rename the shards that hold frames (always at least one, possibly empty)."""
        kept = [s for s in self.shards if s.frames] or self.shards[:1]
        keep = {s.index for s in kept}
        for shard in self.shards:
            if shard.index in keep:
                shard.finish()
            else:
                shard.discard()
        return kept

    def discard(self) -> None:
        for shard in self.shards:
            shard.discard()


# --------------------------------------------------------------------------------------------------------------------
# The stage


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
            example = ""
            with InputStream(path) as stream:
                blocks = read_blocks(stream, block_bytes)
                for result in runner.map(blocks, chunk_length, label, write_windows, shards.single):
                    _take(result, label, shards, totals, reads_out, windows_out)
                    n = len(result.ids)
                    records += n
                    rna += result.rna_reads
                    not_dna += result.not_dna
                    nonempty += result.nonempty
                    example = example or result.not_dna_example
                    bar.update(n)
                name = stream.name
                if records == 0 and not allow_empty:
                    raise InputError(f"{name}: no FASTA records (empty file?)")
                if records == 0:
                    log.warning("%s: no FASTA records; recorded with 0 reads (--allow-empty)", name)
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
        status[duplicate] = _CODE[STATUS_DUPLICATE]
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
    reads_out.write(_rows_text(ids, label, result.first_record, result.lengths, windows, frames, tokens, shard_of, status))


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
        workers=default_workers() if getattr(args, "workers", None) is None else args.workers,
        allow_empty=args.allow_empty,
    )
    return 0
