"""Per-read answers built from window scores: the call, its confidence tier, and the aggregated scores.

The original answers per frame and per window only. Users act on contigs, so each read gets one call with a tier
that says how much to trust it. The rules are deliberately simple and written down in docs/output.md, so that a
table row can be checked by hand:

* **window score**: the largest virus probability (``score2``) over the window's frames; a window is *viral* by the
  original rule (its largest ``score2`` >= its largest ``score1``). A viral window always scores >= 0.5, a
  non-viral one may still score above 0.5 when another frame is confidently non-viral.
* **mean_score / max_score**: the mean and the maximum of the read's window scores (scored windows only).
* **call**: ``virus`` when at least half of the scored windows are viral, ``others`` otherwise, ``NA`` exactly when
  no window was scored (the same rule as ``reads.tsv``).
* **confidence**: with *agreeing* windows = scored windows whose verdict matches the call, *agreement* = agreeing /
  scored, and *margin* = how far ``mean_score`` sits from 0.5 on the side of the call (``mean_score - 0.5`` for
  ``virus``, ``0.5 - mean_score`` for ``others``; negative when the scores contradict the call):

  - ``high``: at least :data:`HIGH_MIN_WINDOWS` agreeing windows, agreement >= :data:`HIGH_AGREEMENT` and margin
    >= :data:`HIGH_MARGIN`;
  - ``medium``: agreement >= :data:`MEDIUM_AGREEMENT` and margin >= :data:`MEDIUM_MARGIN` (a single clear window
    reaches at most ``medium``);
  - ``low``: any other call; ``NA`` when the call is ``NA``.
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

#: Read statuses for frames lost after prepare (a sequence too large for the device even alone): all / some of them.
STATUS_NOT_EMBEDDED = "not_embedded"
STATUS_PARTIAL = "partially_scored"


def read_call(windows_scored: int, windows_viral: int) -> str:
    """``virus`` when at least half of the scored windows are viral; ``NA`` when none was scored."""
    if windows_scored == 0:
        return CALL_NA
    return CALL_VIRUS if 2 * windows_viral >= windows_scored else CALL_OTHERS


def confidence(call: str, windows_scored: int, windows_viral: int, mean_score: float | None) -> str:
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
        return "high"
    if agreement >= MEDIUM_AGREEMENT - eps and margin >= MEDIUM_MARGIN - eps:
        return "medium"
    return "low"


@dataclass(frozen=True)
class ReadCall:
    """A read's aggregated answer (``windows`` is every window cut, scored or not)."""

    windows: int
    windows_scored: int
    windows_viral: int
    mean_score: float | None
    max_score: float | None
    call: str
    confidence: str

    @property
    def fraction_viral(self) -> float | None:
        return self.windows_viral / self.windows_scored if self.windows_scored else None


def call_read(window_scores: Sequence[float | None], window_viral: Sequence[bool | None]) -> ReadCall:
    """Aggregate one read's windows (``None`` = window not scored) into its call."""
    scored = [s for s in window_scores if s is not None]
    viral = sum(1 for v in window_viral if v)
    mean = sum(scored) / len(scored) if scored else None
    top = max(scored) if scored else None
    call = read_call(len(scored), viral)
    return ReadCall(len(window_scores), len(scored), viral, mean, top, call, confidence(call, len(scored), viral, mean))
