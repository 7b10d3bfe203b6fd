"""Summarize stage: shard predictions → the original's two tables plus a per-read ``reads.tsv``.

Prepare put whole reads into shards in input order, so walking ``reads.tsv`` and taking each read's frames from its
shard's table restores the original's global order exactly, however many shards there were. The window table follows
the original's rule (grouping by the frame id minus its last two characters, ``Is_Virus`` = max score2 >= max score1,
rows sorted by window id as text). ``reads.tsv`` lists EVERY input read, scored or not, with its status.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence, TextIO

import numpy as np

from virnucpro.atomic import atomic_text, temp_name
from virnucpro.errors import InputError
from virnucpro.predict import FRAMES_HEADER, format_score
from virnucpro.prepare import read_reads_table

log = logging.getLogger("virnucpro.summarize")

FRAMES_FILE = "prediction_results.txt"
WINDOWS_FILE = "prediction_results_highestscore.csv"
READS_FILE = "reads.tsv"
#: Window rows kept in memory before a sorted run spills to disk (about 100 MB of Python strings).
SPILL_ROWS = 1_000_000
READS_SUMMARY_HEADER = (
    "read_id", "length", "windows", "frames", "windows_scored", "windows_viral", "max_virus_score", "call", "status",
)


#: Reads whose frames could not all be embedded (a sequence too large for the device even alone).
STATUS_NOT_EMBEDDED = "not_embedded"
STATUS_PARTIAL = "partially_scored"
_FRAME_SUFFIX = re.compile(r"[0-9]+[FR][123]")


@dataclass(frozen=True)
class FrameScore:
    """One row of a per-frame table, kept as text for byte-exact output and as float32 for comparisons."""

    line: str
    frame_id: str
    score1: np.float32
    score2: np.float32


def read_frame_table(path: Path) -> Iterator[FrameScore]:
    """Stream a per-frame table written by ``predict`` (original prediction_results.txt format)."""
    try:
        fh = open(path, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot open frame table ({exc.strerror})") from None
    with fh:
        header = fh.readline().rstrip("\n").split("\t")
        if tuple(header) != FRAMES_HEADER:
            raise InputError(f"{path}: not a frame prediction table (header {header})")
        for lineno, line in enumerate(fh, start=2):
            fields = line.rstrip("\n").split("\t")
            try:
                frame_id, _, s1, s2 = fields
                yield FrameScore(line.rstrip("\n"), frame_id, np.float32(s1), np.float32(s2))
            except ValueError:
                raise InputError(f"{path}: line {lineno}: malformed frame row") from None


def _window_calls(frames: Sequence[FrameScore]) -> dict[str, bool]:
    """Original rule per window (frame id minus its last two characters): max score2 >= max score1."""
    best: dict[str, list[np.float32]] = {}
    for f in frames:
        w = f.frame_id[:-2]
        if w in best:
            best[w][0] = max(best[w][0], f.score1)
            best[w][1] = max(best[w][1], f.score2)
        else:
            best[w] = [f.score1, f.score2]
    return {w: bool(s2 >= s1) for w, (s1, s2) in best.items()}


class _WindowSorter:
    """The window table sorted by id with memory bounded by :data:`SPILL_ROWS`: sorted runs spill to temp files in
    ``outdir`` and are merged at the end. Lines sort like their ids, since ids hold no character below the tab."""

    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir
        self.lines: list[str] = []
        self.runs: list[Path] = []

    def extend(self, items: Iterable[tuple[str, bool]]) -> None:
        self.lines.extend(f"{window_id}\t{is_virus}\n" for window_id, is_virus in items)
        if len(self.lines) >= SPILL_ROWS:
            self.lines.sort()
            self.outdir.mkdir(parents=True, exist_ok=True)
            run = temp_name(self.outdir / f"windows-run-{len(self.runs)}.txt")
            run.write_text("".join(self.lines), encoding="utf-8")
            self.runs.append(run)
            self.lines = []

    def sorted_lines(self) -> Iterator[str]:
        self.lines.sort()
        if not self.runs:
            return iter(self.lines)
        files = [open(run, encoding="utf-8") for run in self.runs]
        self._open = files
        return heapq.merge(*files, self.lines)

    def cleanup(self) -> None:
        for fh in getattr(self, "_open", []):
            fh.close()
        for run in self.runs:
            run.unlink(missing_ok=True)


def _status(row: dict[str, str], scored_frames: int) -> str:
    """The prepare status, or why a read with frames has fewer scores than frames."""
    expected = int(row["frames"])
    if expected and scored_frames == 0:
        return STATUS_NOT_EMBEDDED
    if scored_frames < expected:
        return STATUS_PARTIAL
    return row["status"]


def read_call(windows_scored: int, windows_viral: int) -> str:
    """Per-read call: ``virus`` when at least half of its scored windows are viral; ``NA`` when none was scored."""
    if windows_scored == 0:
        return "NA"
    return "virus" if 2 * windows_viral >= windows_scored else "others"


def summarize(reads_tsv: Path, frame_tables: Sequence[Path], outdir: Path) -> dict[str, int]:
    """Write the three per-sample tables into ``outdir``; ``frame_tables[i]`` is shard ``i + 1``'s predictions."""
    outdir = Path(outdir)
    counts = {"reads": 0, "frames": 0, "windows": 0, "windows_viral": 0, "reads_virus": 0}
    windows = _WindowSorter(outdir)
    with contextlib.ExitStack() as stack:
        stack.callback(windows.cleanup)
        shard_iters = [_Peekable(read_frame_table(Path(p))) for p in frame_tables]
        frames_out = stack.enter_context(atomic_text(outdir / FRAMES_FILE))
        reads_out = stack.enter_context(atomic_text(outdir / READS_FILE))
        frames_out.write("\t".join(FRAMES_HEADER) + "\n")
        reads_out.write("\t".join(READS_SUMMARY_HEADER) + "\n")
        for row in read_reads_table(reads_tsv):
            frames = _take_frames(row, shard_iters, reads_tsv, frame_tables)
            for f in frames:
                frames_out.write(f.line + "\n")
            calls = _window_calls(frames)
            windows.extend(calls.items())
            viral = sum(calls.values())
            call = read_call(len(calls), viral)
            max_virus = format_score(max(f.score2 for f in frames)) if frames else "NA"
            _write_read(reads_out, row, len(frames), len(calls), viral, max_virus, call, _status(row, len(frames)))
            counts["reads"] += 1
            counts["frames"] += len(frames)
            counts["windows"] += len(calls)
            counts["windows_viral"] += viral
            counts["reads_virus"] += call == "virus"
        for index, it in enumerate(shard_iters):
            extra = it.peek()
            if extra is not None:
                raise InputError(
                    f"{frame_tables[index]}: frame {extra.frame_id!r} belongs to no read of {reads_tsv}"
                    " (tables from a different prepare run?)"
                )
        with atomic_text(outdir / WINDOWS_FILE) as out:
            out.write("Modified_ID\tIs_Virus\n")
            out.writelines(windows.sorted_lines())
    log.info(
        "%d reads, %d frames, %d windows (%d viral), %d reads called virus → %s",
        counts["reads"], counts["frames"], counts["windows"], counts["windows_viral"], counts["reads_virus"], outdir,
    )
    return counts


def _belongs(frame_id: str, read_id: str) -> bool:
    """Exactly ``{read_id}_chunk_{k}{F|R}{1-3}`` (a read id that is a prefix of another does not match)."""
    prefix = read_id + "_chunk_"
    return frame_id.startswith(prefix) and _FRAME_SUFFIX.fullmatch(frame_id[len(prefix) :]) is not None


def _take_frames(row: dict[str, str], shard_iters: list, reads_tsv: Path, tables: Sequence[Path]) -> list[FrameScore]:
    """The read's rows from its shard's table (at most ``frames``; fewer when some could not be embedded)."""
    n, shard = int(row["frames"]), int(row["shard"])
    if n == 0:
        return []
    if not 1 <= shard <= len(shard_iters):
        raise InputError(f"{reads_tsv}: read {row['read_id']!r} is in shard {shard}, but {len(tables)} frame table(s) were given")
    frames = []
    it = shard_iters[shard - 1]
    while len(frames) < n and it.peek() is not None and _belongs(it.peek().frame_id, row["read_id"]):
        frames.append(next(it))
    return frames


class _Peekable:
    """Iterator over a frame table with one row of look-ahead."""

    def __init__(self, rows: Iterator[FrameScore]) -> None:
        self._rows = rows
        self._next = next(rows, None)

    def peek(self) -> FrameScore | None:
        return self._next

    def __next__(self) -> FrameScore:
        if self._next is None:
            raise StopIteration
        current, self._next = self._next, next(self._rows, None)
        return current


def _write_read(out: TextIO, row: dict[str, str], frames: int, scored: int, viral: int, max_virus: str, call: str, status: str) -> None:
    fields = (row["read_id"], row["length"], row["windows"], frames, scored, viral, max_virus, call, status)
    out.write("\t".join(map(str, fields)) + "\n")


def cli_summarize(args: argparse.Namespace) -> int:
    """``virnucpro summarize``."""
    summarize(args.reads, args.frames, args.outdir)
    return 0
