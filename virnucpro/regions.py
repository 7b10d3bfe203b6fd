"""Viral regions of a contig: maximal runs of viral windows, placed on the contig by the original's window rule.

A contig that is mostly host with a viral stretch (a provirus, a chimeric assembly) is called ``others`` as a
whole, yet the stretch is what a user wants. The rule, applied to the windows in contig order (windows of one read
only; contigs of one window have no regions):

1. A window is *viral* by the original rule (largest ``score2`` >= largest ``score1`` over its frames), *non-viral*
   when scored otherwise, *unscored* when none of its frames survived (stop codons everywhere, not embedded).
2. Tolerance: ONE non-viral or unscored window with a viral window on each side is bridged over (a single dip
   inside a viral stretch does not split it). Two or more in a row end the run.
3. A run starts and ends on a viral window and is kept when it holds at least :data:`MIN_REGION_WINDOWS` viral
   windows (so one isolated viral window in host sequence is not a region).
4. Coordinates are 1-based and inclusive on the contig: ``start`` = start of the run's first window + 1, ``end`` =
   end of its last window, with window positions from :func:`virnucpro.frames.window_starts` (the windows overlap,
   and the last one may be shorter than the chunk length).
5. ``kind`` is ``whole`` when the run spans every window of the contig, ``region`` otherwise.
6. ``mean_score`` is the mean window score (largest ``score2``) over the scored windows of the run, bridged ones
   included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from virnucpro.frames import window_starts

MIN_REGION_WINDOWS = 2
KIND_WHOLE = "whole"
KIND_REGION = "region"


@dataclass(frozen=True)
class Region:
    """A viral run: 1-based inclusive ``start``/``end`` on the contig; ``first``/``last`` 0-based window indices."""

    start: int
    end: int
    first: int
    last: int
    mean_score: float
    kind: str

    @property
    def windows(self) -> int:
        return self.last - self.first + 1


def window_spans(length: int, chunk: int) -> list[tuple[int, int]]:
    """1-based inclusive ``(start, end)`` of every window the original cuts from a read of ``length``."""
    return [(s + 1, min(s + chunk, length)) for s in window_starts(length, chunk)]


def viral_runs(viral: Sequence[bool | None]) -> list[tuple[int, int]]:
    """0-based inclusive ``(first, last)`` window indices of the runs kept by rules 2 and 3."""
    n = len(viral)
    inside = [bool(v) for v in viral]
    for i in range(1, n - 1):
        if not viral[i] and viral[i - 1] and viral[i + 1]:
            inside[i] = True  # one isolated dip between viral windows
    runs = []
    i = 0
    while i < n:
        if not inside[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and inside[j + 1]:
            j += 1
        if sum(1 for k in range(i, j + 1) if viral[k]) >= MIN_REGION_WINDOWS:
            runs.append((i, j))
        i = j + 1
    return runs


def find_regions(spans: Sequence[tuple[int, int]], scores: Sequence[float | None], viral: Sequence[bool | None]) -> list[Region]:
    """The regions of one contig: ``spans`` from :func:`window_spans`, ``scores``/``viral`` per window in order
    (``None`` where not scored)."""
    if len(spans) != len(viral) or len(scores) != len(viral):
        raise ValueError(f"{len(viral)} window verdicts and {len(scores)} scores for {len(spans)} windows")
    if len(spans) < 2:
        return []
    regions = []
    for first, last in viral_runs(viral):
        run_scores = [s for s in scores[first : last + 1] if s is not None]
        kind = KIND_WHOLE if first == 0 and last == len(spans) - 1 else KIND_REGION
        regions.append(Region(spans[first][0], spans[last][1], first, last, sum(run_scores) / len(run_scores), kind))
    return regions
