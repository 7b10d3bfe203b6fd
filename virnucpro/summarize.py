"""Summarize stage: shard predictions → the original's two tables, ``reads.tsv``, and the answers a user acts on.

Prepare put whole reads into shards in input order, so walking ``reads.tsv`` and taking each read's frames from its
shard's table restores the original's global order exactly, however many shards there were. The window table follows
the original's rule (grouping by the frame id minus its last two characters, ``Is_Virus`` = max score2 >= max score1,
rows sorted by window id as text). ``reads.tsv`` lists EVERY input read, scored or not, with its status.

The same single pass also writes the per-contig answers (rules in :mod:`virnucpro.calls` and
:mod:`virnucpro.regions`): ``virus_summary.tsv`` (one row per read), ``virus_regions.tsv`` (viral runs of windows
with contig coordinates), ``virus.fna`` (sequences called virus and region slices), ``report.html`` and
``summary.json`` (counts, unscored reads per reason, and the warnings of :mod:`virnucpro.sample_warnings`). The
sequences come from streaming the original FASTA inputs again, in step with ``reads.tsv`` (same order, ids checked),
so host memory stays at one read plus the report's bounded aggregates.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence, TextIO

import numpy as np

from virnucpro.atomic import atomic_group, temp_name
from virnucpro.calls import (
    CALL_NA, CALL_OTHERS, CALL_VIRUS, NOTE_SHORT, NOTE_TOO_LITTLE, STATUS_NOT_EMBEDDED, STATUS_PARTIAL, ReadCall, call_read,
)
from virnucpro.errors import InputError
from virnucpro.fasta import FastaRecord, read_fasta, write_record
from virnucpro.predict import FRAMES_HEADER, format_score
from virnucpro.readstable import STATUS_DUPLICATE, STATUS_INVALID, read_reads_table
from virnucpro.regions import KIND_WHOLE, Region, find_regions, window_spans
from virnucpro.report import ReportBuilder
from virnucpro.sample_warnings import REASON_RNA, REASON_SHORT, REASON_TOO_LITTLE, STATUS_REASONS, SampleWarnings, plural
from virnucpro.shards_check import FRAMES_TAG, tables_by_shard

log = logging.getLogger("virnucpro.summarize")

FRAMES_FILE = "prediction_results.txt"
WINDOWS_FILE = "prediction_results_highestscore.csv"
READS_FILE = "reads.tsv"
SUMMARY_FILE = "virus_summary.tsv"
REGIONS_FILE = "virus_regions.tsv"
VIRUS_FASTA_FILE = "virus.fna"
REPORT_FILE = "report.html"
JSON_FILE = "summary.json"
#: Every file summarize writes, in the order the run manifest lists them.
OUTPUT_FILES = (FRAMES_FILE, WINDOWS_FILE, READS_FILE, SUMMARY_FILE, REGIONS_FILE, VIRUS_FASTA_FILE, REPORT_FILE, JSON_FILE)
#: New columns go at the end, so that scripts reading columns by position keep working.
SUMMARY_HEADER = (
    "read_id", "length", "windows", "windows_scored", "windows_viral", "fraction_viral", "mean_score", "max_score",
    "call", "confidence", "status", "regions", "coverage", "viral_bp", "notes",
)
REGIONS_HEADER = ("read_id", "start", "end", "windows", "mean_score", "kind")
#: Line width of virus.fna (Biopython's FASTA writer wraps at 60, as the original's chunk files do).
FASTA_WIDTH = 60
#: Window rows kept in memory before a sorted run spills to disk (about 100 MB of Python strings).
SPILL_ROWS = 1_000_000
READS_SUMMARY_HEADER = (
    "read_id", "length", "windows", "frames", "windows_scored", "windows_viral", "max_virus_score", "call", "status",
)
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
        if header[0].startswith(FRAMES_TAG):  # the shard identity line (virnucpro.shards_check)
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


def _window_best(frames: Sequence[FrameScore]) -> dict[str, tuple[np.float32, np.float32]]:
    """Per window (frame id minus its last two characters): (max score1, max score2) over its frames, in order."""
    best: dict[str, list[np.float32]] = {}
    for f in frames:
        w = f.frame_id[:-2]
        if w in best:
            best[w][0] = max(best[w][0], f.score1)
            best[w][1] = max(best[w][1], f.score2)
        else:
            best[w] = [f.score1, f.score2]
    return {w: (s1, s2) for w, (s1, s2) in best.items()}


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


def _input_records(inputs: Sequence[Path]) -> Iterator[tuple[Path, FastaRecord]]:
    for path in inputs:
        for record in read_fasta(path):
            yield Path(path), record


def _next_record(records: Iterator[tuple[Path, FastaRecord]], row: dict[str, str], inputs: Sequence[Path], reads_tsv: Path) -> str:
    """The sequence of ``row``'s read: the next input record, which must carry the same id and length."""
    item = next(records, None)
    if item is None:
        raise InputError(
            f"{', '.join(map(str, inputs))}: the inputs end before read {row['read_id']!r} of {reads_tsv}"
            " (give --inputs the same FASTA files, in the same order, as prepare)"
        )
    path, record = item
    if record.id != row["read_id"] or str(len(record.sequence)) != row["length"]:
        raise InputError(
            f"{path}: record {record.number} is {record.id!r} ({len(record.sequence)} bp) but {reads_tsv} expects"
            f" {row['read_id']!r} ({row['length']} bp) there (give --inputs the same FASTA files, in the same order,"
            " as prepare)"
        )
    return record.sequence


def _read_windows(
    row: dict[str, str], best: dict[str, tuple[np.float32, np.float32]], chunk_length: int, reads_tsv: Path
) -> tuple[list, list, list]:
    """Per window of the read, in contig order: its span on the read, its score (max score2) and its verdict by the
    original rule, max score2 >= max score1 (``None`` when not scored). ``best`` is :func:`_window_best` of its frames."""
    n, length, read_id = int(row["windows"]), int(row["length"]), row["read_id"]
    spans = window_spans(length, chunk_length) if n else []
    if len(spans) != n:
        raise InputError(
            f"{reads_tsv}: read {read_id!r} ({length} bp) has {n} windows, but chunk length {chunk_length} cuts"
            f" {len(spans)} (--chunk-length differs from the one prepare used?)"
        )
    scores: list[float | None] = [None] * n
    viral: list[bool | None] = [None] * n
    prefix = len(read_id) + len("_chunk_")
    for window_id, (s1, s2) in best.items():
        k = int(window_id[prefix:])
        if not 1 <= k <= n:
            raise InputError(f"{reads_tsv}: read {read_id!r} has {n} windows but a frame of window {k} was scored")
        scores[k - 1], viral[k - 1] = float(s2), bool(s2 >= s1)
    return spans, scores, viral


def _fmt(value: float | None, digits: int = 4) -> str:
    return "NA" if value is None else f"{value:.{digits}f}"


def _write_answers(
    row: dict[str, str], status: str, rc: ReadCall, max_score: str, regions: list[Region], sequence: str,
    summary: TextIO, regions_out: TextIO, fasta: TextIO,
) -> None:
    """The read's row in virus_summary.tsv, its regions, and its virus.fna records."""
    read_id = row["read_id"]
    fields = (
        read_id, row["length"], row["windows"], rc.windows_scored, rc.windows_viral, _fmt(rc.fraction_viral),
        _fmt(rc.mean_score), max_score, rc.call, rc.confidence, status, len(regions), _fmt(rc.coverage), rc.viral_bp,
        ",".join(rc.notes) or "-",
    )
    summary.write("\t".join(map(str, fields)) + "\n")
    for r in regions:
        regions_out.write(f"{read_id}\t{r.start}\t{r.end}\t{r.windows}\t{_fmt(r.mean_score)}\t{r.kind}\n")
    if rc.call == CALL_VIRUS:
        description = (
            f"call=virus confidence={rc.confidence} length={len(sequence)} coordinates=1-{len(sequence)}"
            f" windows_viral={rc.windows_viral}/{rc.windows_scored} mean_score={_fmt(rc.mean_score)}"
        )
        write_record(fasta, f"{read_id} {description}", sequence, FASTA_WIDTH)
    for r in regions:
        if r.kind == KIND_WHOLE and rc.call == CALL_VIRUS:
            continue  # the whole sequence is already there
        description = f"kind={r.kind} coordinates={r.start}-{r.end} windows={r.windows} mean_score={_fmt(r.mean_score)}"
        write_record(fasta, f"{read_id}:{r.start}-{r.end} {description}", sequence[r.start - 1 : r.end], FASTA_WIDTH)


def sample_name(inputs: Sequence[Path | str]) -> str:
    """The sample a run's inputs make, as the pipeline names it: the file name without its FASTA and compression
    extensions (``reads.fa.gz`` → ``reads``); several files are joined with ``+``."""
    names = []
    for p in inputs:
        name = Path(p).name
        for ext in (".gz", ".bz2", ".xz", ".zst"):
            name = name.removesuffix(ext)
        for ext in (".fasta", ".fa", ".fna", ".fas", ".ffn", ".fsa"):
            if name.lower().endswith(ext):
                name = name[: -len(ext)]
                break
        names.append(name or Path(p).name)
    return "+".join(names)


def summarize(
    reads_tsv: Path, frame_tables: Sequence[Path], outdir: Path, *, inputs: Sequence[Path], chunk_length: int,
    title: str | None = None, run_warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """Write every per-sample output into ``outdir``; ``frame_tables[i]`` is shard ``i + 1``'s predictions.

    ``inputs`` are the FASTA files given to prepare (same order): their sequences go into ``virus.fna``.
    ``chunk_length`` is prepare's: it places windows, and so regions, on the contigs. ``title`` names the sample in
    the report (default: the ``outdir`` folder's name, the sample name in the pipeline); ``run_warnings`` are
    warnings of the stages before (the classifier check) to show with the sample's own. Returns the counts
    (``windows`` = windows cut, ``windows_scored``, ...), ``unscored`` (reads with call NA, per reason) and
    ``warnings``, as summary.json holds them.
    """
    outdir = Path(outdir)
    inputs = [Path(p) for p in inputs]
    counts: dict[str, Any] = {
        "reads": 0, "frames": 0, "windows": 0, "windows_scored": 0, "windows_viral": 0, "reads_virus": 0,
        "reads_others": 0, "reads_na": 0, "regions": 0,
    }
    unscored: dict[str, int] = {}
    warnings = SampleWarnings(chunk_length)
    for message in run_warnings:
        warnings.add_run_message(message)
    windows = _WindowSorter(outdir)
    title = title or outdir.resolve().name
    report = ReportBuilder(chunk_length, title, [p.name for p in inputs])
    with contextlib.ExitStack() as stack:
        stack.callback(windows.cleanup)
        # the sample's tables appear together or not at all (never this run's next to an earlier run's)
        tables = stack.enter_context(atomic_group())
        # None: a shard without frames that was not scored (see virnucpro.shards_check.tables_by_shard)
        shard_iters = [_Peekable(read_frame_table(Path(p)) if p is not None else iter(())) for p in frame_tables]
        records = _input_records(inputs)
        frames_out = tables.text(outdir / FRAMES_FILE)
        reads_out = tables.text(outdir / READS_FILE)
        summary_out = tables.text(outdir / SUMMARY_FILE)
        regions_out = tables.text(outdir / REGIONS_FILE)
        fasta_out = tables.text(outdir / VIRUS_FASTA_FILE)
        frames_out.write("\t".join(FRAMES_HEADER) + "\n")
        reads_out.write("\t".join(READS_SUMMARY_HEADER) + "\n")
        summary_out.write("\t".join(SUMMARY_HEADER) + "\n")
        regions_out.write("\t".join(REGIONS_HEADER) + "\n")
        for row in read_reads_table(reads_tsv):
            sequence = _next_record(records, row, inputs, reads_tsv)
            frames = _take_frames(row, shard_iters, reads_tsv, frame_tables)
            for f in frames:
                frames_out.write(f.line + "\n")
            best = _window_best(frames)
            windows.extend((w, bool(s2 >= s1)) for w, (s1, s2) in best.items())
            spans, scores, verdicts = _read_windows(row, best, chunk_length, reads_tsv)
            # reads.tsv and virus_summary.tsv share this one call
            rc = call_read(scores, verdicts, length=len(sequence), chunk_length=chunk_length, spans=spans)
            max_virus = format_score(max(f.score2 for f in frames)) if frames else "NA"
            status = _status(row, len(frames))
            _write_read(reads_out, row, len(frames), rc.windows_scored, rc.windows_viral, max_virus, rc.call, status)
            regions = find_regions(spans, scores, verdicts)
            _write_answers(row, status, rc, max_virus, regions, sequence, summary_out, regions_out, fasta_out)
            report.add_read(row["read_id"], len(sequence), status, rc, spans, scores, verdicts, regions)
            counts["reads"] += 1
            counts["frames"] += len(frames)
            counts["windows"] += rc.windows
            counts["windows_scored"] += rc.windows_scored
            counts["windows_viral"] += rc.windows_viral
            counts["reads_virus"] += rc.call == CALL_VIRUS
            counts["reads_others"] += rc.call == CALL_OTHERS
            counts["reads_na"] += rc.call == CALL_NA
            counts["regions"] += len(regions)
            _note_warnings(warnings, unscored, row["read_id"], status, rc, sequence)
        for index, it in enumerate(shard_iters):
            extra = it.peek()
            if extra is not None:
                raise InputError(
                    f"{frame_tables[index]}: frame {extra.frame_id!r} belongs to no read of {reads_tsv}"
                    " (tables from a different prepare run?)"
                )
        leftover = next(records, None)
        if leftover is not None:
            raise InputError(
                f"{leftover[0]}: record {leftover[1].number} ({leftover[1].id!r}) is not in {reads_tsv}"
                " (give --inputs the same FASTA files, in the same order, as prepare)"
            )
        out = tables.text(outdir / WINDOWS_FILE)
        out.write("Modified_ID\tIs_Virus\n")
        out.writelines(windows.sorted_lines())
        warnings.reads = counts["reads"]
        for line in warnings.lines()[len(warnings.run_messages):]:  # run-level ones were logged where they arose
            log.warning("%s", line)
        tables.text(outdir / REPORT_FILE).write(report.render(warnings.lines(), counts["reads_na"], unscored))
        counts["unscored"] = dict(sorted(unscored.items()))
        counts["warnings"] = warnings.items()
        out = tables.text(outdir / JSON_FILE)
        json.dump({"sample": title, "chunk_length": chunk_length, **counts}, out, indent=2)
        out.write("\n")
    log.info(
        "%s: %d virus, %d others, %d NA; %d windows cut, %d scored (%d viral), %s scored; %s → %s",
        plural(counts["reads"], "read"), counts["reads_virus"], counts["reads_others"], counts["reads_na"],
        counts["windows"], counts["windows_scored"], counts["windows_viral"], plural(counts["frames"], "frame"),
        plural(counts["regions"], "viral region"), outdir,
    )
    return counts


def _note_warnings(
    warnings: SampleWarnings, unscored: dict[str, int], read_id: str, status: str, rc: ReadCall, sequence: str
) -> None:
    """Count the read under every warning it carries, and under its reason when it got no call."""
    if status in STATUS_REASONS:
        warnings.add(status, read_id)
    if NOTE_TOO_LITTLE in rc.notes:
        warnings.add(REASON_TOO_LITTLE, read_id)
    if NOTE_SHORT in rc.notes:
        warnings.add(REASON_SHORT, read_id)
    if status not in (STATUS_INVALID, STATUS_DUPLICATE) and ("U" in sequence or "u" in sequence):
        warnings.add(REASON_RNA, read_id)
    if rc.call == CALL_NA:
        reason = NOTE_TOO_LITTLE if NOTE_TOO_LITTLE in rc.notes else status
        unscored[reason] = unscored.get(reason, 0) + 1


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
    tables = tables_by_shard(args.manifest, args.frames) if args.manifest else args.frames
    summarize(args.reads, tables, args.outdir, inputs=args.inputs, chunk_length=args.chunk_length)
    return 0
