"""The warnings of one sample, counted per reason with the first few read ids, for the report, the log and JSON.

A warning a user never sees is no warning: run.log alone is read by few, so every reason a call is missing or weak
(reads left unscored for invalid characters, RNA read as DNA, reads too short or too little scored to call, frames
not embedded, a classifier that is not the published one) is counted here once and then shown the same way in
report.html, in summary.json and in the log. Per-read reasons are derived from what summarize sees (``reads.tsv``
statuses, the sequences, the calls), so the pipeline's SUMMARIZE step, which sees nothing else, reports them too;
run-level ones (the classifier check) are passed in by ``virnucpro run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from virnucpro.calls import MIN_CALL_COVERAGE, STATUS_NOT_EMBEDDED, STATUS_PARTIAL
from virnucpro.readstable import STATUS_DUPLICATE, STATUS_INVALID

#: Read ids kept per reason (the report and summary.json list them as examples).
EXAMPLES = 5

REASON_INVALID = STATUS_INVALID
REASON_DUPLICATE = STATUS_DUPLICATE
REASON_NOT_EMBEDDED = STATUS_NOT_EMBEDDED
REASON_PARTIAL = STATUS_PARTIAL
REASON_RNA = "rna_read_as_dna"
REASON_SHORT = "short_reads"
REASON_TOO_LITTLE = "too_little_scored"
REASON_RUN = "run"

#: Reads with these statuses carry a warning (the other statuses are ordinary outcomes, counted in ``unscored``).
STATUS_REASONS = (REASON_INVALID, REASON_DUPLICATE, REASON_NOT_EMBEDDED, REASON_PARTIAL)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 read``, ``2 reads`` (``many`` for irregular plurals)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


@dataclass
class _Reason:
    count: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass
class SampleWarnings:
    """Counts per reason in first-seen order; memory is bounded by :data:`EXAMPLES` ids per reason."""

    chunk_length: int
    reads: int = 0
    reasons: dict[str, _Reason] = field(default_factory=dict)
    run_messages: list[str] = field(default_factory=list)

    def add(self, reason: str, read_id: str) -> None:
        entry = self.reasons.setdefault(reason, _Reason())
        entry.count += 1
        if len(entry.examples) < EXAMPLES:
            entry.examples.append(read_id)

    def add_run_message(self, message: str) -> None:
        if message not in self.run_messages:
            self.run_messages.append(message)

    def count(self, reason: str) -> int:
        return self.reasons[reason].count if reason in self.reasons else 0

    def _message(self, reason: str, n: int) -> str:
        reads = plural(n, "read")
        one = n == 1
        half = self.chunk_length // 2
        if reason == REASON_INVALID:
            return f"{reads} {'holds' if one else 'hold'} letters that are not nucleotide codes (status {STATUS_INVALID}): left unscored, call NA"
        if reason == REASON_DUPLICATE:
            return f"{reads} {'repeats' if one else 'repeat'} an id seen earlier in the inputs (status {STATUS_DUPLICATE}): listed, not scored again"
        if reason == REASON_NOT_EMBEDDED:
            return f"{reads} could not be embedded at all (status {STATUS_NOT_EMBEDDED}): call NA"
        if reason == REASON_PARTIAL:
            return f"{reads} {'has' if one else 'have'} frames that could not be embedded (status {STATUS_PARTIAL}): their calls rest on fewer windows"
        if reason == REASON_RNA:
            return f"{reads} {'contains' if one else 'contain'} U (RNA): U was read as T for windows, frames and embeddings"
        if reason == REASON_TOO_LITTLE:
            return (f"{reads} had fewer than {MIN_CALL_COVERAGE:.0%} of their windows scored: no call (NA) for the whole"
                    " sequence; any viral region is still in virus_regions.tsv and virus.fna")
        if reason == REASON_SHORT:
            text = f"{reads} {'is' if one else 'are'} shorter than half the {self.chunk_length} bp window (< {half} bp): confidence low at most"
            if self.reads and 2 * n > self.reads:
                text += (f" — that is {100 * n / self.reads:.0f}% of the sample: the published 300/500 models were"
                         " measured at about 53% accuracy on 150 bp reads by an independent benchmark, so calls on"
                         " these reads are close to chance (assemble reads into contigs first where possible)")
            return text
        return f"{reads}: {reason}"

    def items(self) -> list[dict]:
        """Every warning as ``{reason, count, examples, message}``; run-level ones first (count 0, no examples)."""
        out = [{"reason": REASON_RUN, "count": 0, "examples": [], "message": m} for m in self.run_messages]
        for reason, entry in self.reasons.items():
            out.append({"reason": reason, "count": entry.count, "examples": list(entry.examples),
                        "message": self._message(reason, entry.count)})
        return out

    def lines(self) -> list[str]:
        """One human sentence per warning, with the first read ids (the log and the report)."""
        return [w["message"] + (f" (e.g. {', '.join(w['examples'])})" if w["examples"] else "") for w in self.items()]
