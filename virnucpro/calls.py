"""Per-read answers built from window scores: the call, its confidence tier, and the evidence they rest on.

The original answers per frame and per window only. Users act on contigs, so each read gets one call with a tier
that says how much to trust it, and columns that say how much of the read the call rests on. The rules are
deliberately simple and written down in docs/output.md (with the measurements behind the thresholds), so that a
table row can be checked by hand:

* **window score**: the largest virus probability (``score2``) over the window's frames; a window is *viral* by the
  original rule (its largest ``score2`` >= its largest ``score1``). A viral window always scores >= 0.5, a
  non-viral one may still score above 0.5 when another frame is confidently non-viral.
* **coverage**: scored windows / windows cut (a window is scored when one of its frames is stop-free).
* **mean_score / max_score**: the mean and the maximum of the read's window scores (scored windows only).
* **call**: ``NA`` when no window was scored or when coverage < :data:`MIN_CALL_COVERAGE` (too little of the read
  was scored to say anything about all of it: its viral regions are still reported); otherwise ``virus`` when at
  least half of the scored windows are viral, ``others`` when not (the same rule as ``reads.tsv``).
* **confidence**: with *agreeing* windows = scored windows whose verdict matches the call, *agreement* = agreeing /
  scored, and *margin* = how far ``mean_score`` sits from 0.5 on the side of the call (``mean_score - 0.5`` for
  ``virus``, ``0.5 - mean_score`` for ``others``; negative when the scores contradict the call):

  - ``high``: at least :data:`HIGH_MIN_WINDOWS` agreeing windows, agreement >= :data:`HIGH_AGREEMENT` and margin
    >= :data:`HIGH_MARGIN`;
  - ``medium``: agreement >= :data:`MEDIUM_AGREEMENT` and margin >= :data:`MEDIUM_MARGIN` (a single clear window
    reaches at most ``medium``);
  - ``low``: any other call; ``NA`` when the call is ``NA``;

  then capped: at most ``medium`` when coverage < :data:`HIGH_MIN_COVERAGE`, at most ``low`` for a read shorter
  than :data:`SHORT_READ_FRACTION` of the chunk length (a 20 bp read is a 6-residue protein).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

CALL_VIRUS = "virus"
CALL_OTHERS = "others"
CALL_NA = "NA"

HIGH_MIN_WINDOWS = 2
HIGH_AGREEMENT = 0.8
HIGH_MARGIN = 0.3
MEDIUM_AGREEMENT = 0.6
MEDIUM_MARGIN = 0.15
CONFIDENCE_TIERS = ("high", "medium", "low")
#: Below this coverage the read gets no call (NA). No read of the 3,009 real sequences in /work/shared/realdata is
#: below it at chunk 300 or 500 (lowest: 0.10), while long random DNA is (0.002 at chunk 500, 0.05 at 300);
#: measured by benchmarks/coverage_evidence.py, see docs/output.md.
MIN_CALL_COVERAGE = 0.1
#: Below this coverage the confidence is at most ``medium`` (1-6 % of the scored real reads at chunk 300, 2-17 % at 500).
HIGH_MIN_COVERAGE = 0.25
#: Reads shorter than this fraction of the chunk length are ``low`` at most.
SHORT_READ_FRACTION = 0.5

#: Codes of the ``notes`` column (``-`` when none applies): why a call or tier is what it is.
NOTE_SHORT = "short_read"
NOTE_LOW_COVERAGE = "low_coverage"
NOTE_TOO_LITTLE = "too_little_scored"
NOTE_FRAME = "other_frame_more_confident"

#: Read statuses for frames lost after prepare (a sequence too large for the device even alone): all / some of them.
STATUS_NOT_EMBEDDED = "not_embedded"
STATUS_PARTIAL = "partially_scored"


def read_call(windows_scored: int, windows_viral: int, windows: int | None = None) -> str:
    """``virus`` when at least half of the scored windows are viral; ``NA`` when none was scored, or when fewer than
    :data:`MIN_CALL_COVERAGE` of the ``windows`` cut were scored (``windows`` None: not checked)."""
    if windows_scored == 0 or (windows and windows_scored < MIN_CALL_COVERAGE * windows):
        return CALL_NA
    return CALL_VIRUS if 2 * windows_viral >= windows_scored else CALL_OTHERS


def is_short(length: int, chunk_length: int) -> bool:
    """Shorter than :data:`SHORT_READ_FRACTION` of a window: confidence ``low`` at most."""
    return 0 < length < SHORT_READ_FRACTION * chunk_length


def confidence(
    call: str, windows_scored: int, windows_viral: int, mean_score: float | None, *, coverage: float | None = None,
    short: bool = False,
) -> str:
    """The tier of a call by the rule in the module docstring."""
    if call == CALL_NA or windows_scored == 0 or mean_score is None:
        return CALL_NA
    if call == CALL_VIRUS:
        agreeing, margin = windows_viral, mean_score - 0.5
    else:
        agreeing, margin = windows_scored - windows_viral, 0.5 - mean_score
    agreement = agreeing / windows_scored
    # A tiny epsilon keeps values printed as the threshold (0.8 = 0.30000001 - 0.5 in float32) on the documented side.
    eps = 1e-6
    if agreeing >= HIGH_MIN_WINDOWS and agreement >= HIGH_AGREEMENT - eps and margin >= HIGH_MARGIN - eps:
        tier = "high"
    elif agreement >= MEDIUM_AGREEMENT - eps and margin >= MEDIUM_MARGIN - eps:
        tier = "medium"
    else:
        tier = "low"
    if short:
        return "low"
    if tier == "high" and coverage is not None and coverage < HIGH_MIN_COVERAGE:
        return "medium"
    return tier


@dataclass(frozen=True)
class ReadCall:
    """A read's aggregated answer (``windows`` is every window cut, scored or not; ``viral_bp`` the bases covered
    by its viral windows; ``notes`` the codes of the ``notes`` column)."""

    windows: int
    windows_scored: int
    windows_viral: int
    mean_score: float | None
    max_score: float | None
    call: str
    confidence: str
    viral_bp: int = 0
    notes: tuple[str, ...] = ()

    @property
    def fraction_viral(self) -> float | None:
        return self.windows_viral / self.windows_scored if self.windows_scored else None

    @property
    def coverage(self) -> float | None:
        return self.windows_scored / self.windows if self.windows else None


def viral_bases(spans: Sequence[tuple[int, int]], viral: Sequence[bool | None]) -> int:
    """Bases covered by the viral windows (1-based inclusive ``spans`` in contig order; overlaps counted once)."""
    total, reach = 0, 0
    for (start, end), v in zip(spans, viral):
        if v:
            total += max(0, end - max(start, reach + 1) + 1)
            reach = max(reach, end)
    return total


def call_read(
    window_scores: Sequence[float | None], window_viral: Sequence[bool | None], *, length: int = 0,
    chunk_length: int = 0, spans: Sequence[tuple[int, int]] = (),
) -> ReadCall:
    """Aggregate one read's windows (``None`` = window not scored) into its call.

    ``length``/``chunk_length`` give the short-read cap and ``spans`` (window positions) the viral bases."""
    scored = [s for s in window_scores if s is not None]
    viral = sum(1 for v in window_viral if v)
    windows = len(window_scores)
    mean = sum(scored) / len(scored) if scored else None
    top = max(scored) if scored else None
    call = read_call(len(scored), viral, windows)
    short = bool(chunk_length) and is_short(length, chunk_length)
    coverage = len(scored) / windows if windows else None
    tier = confidence(call, len(scored), viral, mean, coverage=coverage, short=short)
    notes = []
    if scored and call == CALL_NA:
        notes.append(NOTE_TOO_LITTLE)
    if call != CALL_NA and short:
        notes.append(NOTE_SHORT)
    if call != CALL_NA and coverage is not None and coverage < HIGH_MIN_COVERAGE:
        notes.append(NOTE_LOW_COVERAGE)
    if call == CALL_OTHERS and any(s is not None and s >= 0.5 and not v for s, v in zip(window_scores, window_viral)):
        notes.append(NOTE_FRAME)  # a window scored >= 0.5 yet is not viral: another frame was more confident
    return ReadCall(windows, len(scored), viral, mean, top, call, tier, viral_bases(spans, window_viral), tuple(notes))
