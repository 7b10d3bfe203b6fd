"""``report.html``: one self-contained page per sample (inline CSS and SVG, no script, no network).

A user opens it on a laptop, offline, straight from a results folder or an e-mail: so nothing is fetched, no
JavaScript runs, and every figure is an SVG drawn here from the same numbers the tables hold. Memory stays bounded
whatever the sample size: the builder keeps counters and fixed-bin histograms, and window tracks only for the
longest contigs (as the original's ``drew_fig.py`` draws its first five) plus up to :data:`MAX_REGION_TRACKS` contigs
that hold a viral region, the longest first.

The report also carries the sample's warnings (:mod:`virnucpro.sample_warnings`: counts and first read ids), the
same ones summarize writes to the log and to summary.json.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from html import escape
from typing import Sequence

from virnucpro import __version__
from virnucpro.calls import (
    CALL_NA, CALL_OTHERS, CALL_VIRUS, CONFIDENCE_TIERS, HIGH_MIN_COVERAGE, MIN_CALL_COVERAGE, NOTE_FRAME,
    NOTE_LOW_COVERAGE, NOTE_SHORT, ReadCall,
)
from virnucpro.readstable import STATUS_DUPLICATE
from virnucpro.regions import Region
from virnucpro.sample_warnings import plural

#: Contigs drawn because they are the longest (drew_fig.py draws the first five of its table).
TOP_LONGEST = 5
#: At most this many further contigs with a viral region are drawn (the longest); the rest are counted.
MAX_REGION_TRACKS = 100
SCORE_BINS = 20
#: Length classes of the calls-by-length table (upper bounds, bp; the last class is open).
LENGTH_EDGES = (150, 300, 500, 1000, 2000, 5000, 10000, 50000)

#: Narrowest bar of a window track, in pixels (a window of a very long contig would be invisible otherwise).
MIN_BAR_PX = 2.0

_COLORS = {CALL_VIRUS: "#c0392b", CALL_OTHERS: "#2c5aa0", CALL_NA: "#9a9a9a"}


@dataclass
class _Track:
    read_id: str
    length: int
    call: str
    confidence: str
    spans: list[tuple[int, int]]
    scores: list[float | None]
    viral: list[bool | None]
    regions: list[Region]


@dataclass
class ReportBuilder:
    """Collects what the report shows, one read at a time, in bounded memory."""

    chunk_length: int
    title: str
    inputs: list[str]
    reads: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    calls: dict[tuple[str, str], int] = field(default_factory=dict)
    window_hist: list[list[int]] = field(default_factory=lambda: [[0] * SCORE_BINS, [0] * SCORE_BINS])
    contig_hist: list[list[int]] = field(default_factory=lambda: [[0] * SCORE_BINS, [0] * SCORE_BINS])
    by_length: list[dict[str, int]] = field(default_factory=lambda: [{} for _ in range(len(LENGTH_EDGES) + 1)])
    short: int = 0
    low_coverage: int = 0
    other_frame: int = 0
    regions: int = 0
    reads_with_region: int = 0
    _longest: list = field(default_factory=list)
    _with_region: list = field(default_factory=list)

    def add_read(
        self, read_id: str, length: int, status: str, rc: ReadCall, spans: Sequence[tuple[int, int]],
        scores: Sequence[float | None], viral: Sequence[bool | None], regions: Sequence[Region],
    ) -> None:
        index = self.reads
        self.reads += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        key = (rc.call, rc.confidence)
        self.calls[key] = self.calls.get(key, 0) + 1
        for s, v in zip(scores, viral):
            if s is not None:
                self.window_hist[0 if v else 1][_bin(s)] += 1
        if rc.mean_score is not None:
            self.contig_hist[0 if rc.call == CALL_VIRUS else 1][_bin(rc.mean_score)] += 1
        cls = self.by_length[_length_class(length)]
        cls[rc.call] = cls.get(rc.call, 0) + 1
        self.short += NOTE_SHORT in rc.notes
        self.low_coverage += NOTE_LOW_COVERAGE in rc.notes
        self.other_frame += NOTE_FRAME in rc.notes
        self.regions += len(regions)
        self.reads_with_region += bool(regions)
        if len(spans) < 2 or rc.windows_scored == 0:
            return
        track = _Track(read_id, length, rc.call, rc.confidence, list(spans), list(scores), list(viral), list(regions))
        # min-heaps on (length, -index): the shortest (and, at equal length, the latest) read is dropped first
        entry = (length, -index, track)  # -index is unique: tracks are never compared
        _push(self._longest, entry, TOP_LONGEST)
        if regions:
            _push(self._with_region, entry, MAX_REGION_TRACKS)

    def tracks(self) -> tuple[list[_Track], int]:
        """Contigs to draw, longest first, and how many contigs with a region were left out."""
        chosen: dict[int, tuple] = {}
        for entry in self._longest + self._with_region:
            chosen[entry[1]] = entry
        ordered = sorted(chosen.values(), key=lambda e: (-e[0], -e[1]))
        return [e[2] for e in ordered], self.reads_with_region - len(self._with_region)

    def render(self, warnings: Sequence[str] = (), reads_na: int = 0, unscored: dict[str, int] | None = None) -> str:
        """The whole page; ``warnings`` as :meth:`SampleWarnings.lines` gives them, ``unscored`` the reads with call
        NA per reason."""
        tracks, left_out = self.tracks()
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>VirNucPro report: {escape(self.title)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<h1>VirNucPro report: {escape(self.title)}</h1>",
            f'<p class="meta">virnucpro {escape(__version__)} · window (chunk) length {self.chunk_length} bp · '
            f"{plural(self.reads, 'read')} from {escape(', '.join(self.inputs)) or 'no input'} · files: virus_summary.tsv, "
            "virus_regions.tsv, virus.fna, summary.json (rules and columns: docs/output.md)</p>",
        ]
        parts.append('<section id="warnings"><h2>Warnings</h2>')
        if warnings:
            parts.append('<ul class="warnings">' + "".join(f"<li>{escape(w)}</li>" for w in warnings) + "</ul>")
        else:
            parts.append("<p>None.</p>")
        parts.append("</section>")
        parts.append(self._calls_section(reads_na, unscored or {}))
        parts.append(self._status_section())
        parts.append('<section id="scores"><h2>Score distributions</h2>')
        parts.append(
            "<p>Window score: the largest virus probability over a window's frames (red: window viral by the original"
            " rule). Contig score: the mean window score of a read (red: read called virus).</p>"
        )
        parts.append('<div class="figs">')
        parts.append(_histogram_svg("Window scores", self.window_hist, ("viral window", "non-viral window")))
        parts.append(_histogram_svg("Contig (read) mean scores", self.contig_hist, ("called virus", "called others")))
        parts.append("</div></section>")
        parts.append(self._length_section())
        parts.append(self._tracks_section(tracks, left_out))
        parts.append("</body></html>\n")
        return "\n".join(parts)

    def _calls_section(self, reads_na: int, unscored: dict[str, int]) -> str:
        rows = []
        for call in (CALL_VIRUS, CALL_OTHERS, CALL_NA):
            tiers = (*CONFIDENCE_TIERS,) if call != CALL_NA else (CALL_NA,)
            cells = [self.calls.get((call, t), 0) for t in tiers]
            per_tier = " · ".join(f"{t} {n}" for t, n in zip(tiers, cells)) if call != CALL_NA else ""
            rows.append(f"<tr><td><span class=\"dot\" style=\"background:{_COLORS[call]}\"></span>{call}</td>"
                        f"<td class=\"n\">{sum(cells)}</td><td>{per_tier}</td></tr>")
        return (
            '<section id="calls"><h2>Calls</h2><table><thead><tr><th>call</th><th>reads</th><th>confidence</th></tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table>"
            f"<p>{plural(self.regions, 'viral region')} on {plural(self.reads_with_region, 'contig')} (virus_regions.tsv).</p>"
            f"{self._legend(reads_na, unscored)}</section>"
        )

    def _legend(self, reads_na: int, unscored: dict[str, int]) -> str:
        """How to read a call: the window rule, the NA reasons, and the caps on confidence, with this sample's counts."""
        half = self.chunk_length // 2
        why_na = ", ".join(f"{escape(r)} {n}" for r, n in sorted(unscored.items(), key=lambda x: (-x[1], x[0])))
        items = [
            "<li><b>Window rule</b>: a window is viral when its best virus probability (<code>score2</code>, over its"
            " six frames) is at least its best non-virus probability (<code>score1</code>); a read is called"
            " <i>virus</i> when at least half of its scored windows are viral. So a read can show a high"
            " <code>max_score</code> and still be <i>others</i>: another frame of the same window scored more"
            f" confidently non-viral (column <code>notes</code>: <code>{NOTE_FRAME}</code>;"
            f" {plural(self.other_frame, 'read')} here).</li>",
            f"<li><b>NA</b> ({plural(reads_na, 'read')}): no window could be scored, or fewer than"
            f" {MIN_CALL_COVERAGE:.0%} of them (<code>coverage</code> column)" + (f" — by reason: {why_na}" if why_na else "")
            + ".</li>",
            f"<li><b>Confidence caps</b>: at most <i>medium</i> when under {HIGH_MIN_COVERAGE:.0%} of the windows were"
            f" scored ({plural(self.low_coverage, 'read')} here); at most <i>low</i> for reads shorter than half the window (&lt; {half} bp):"
            f" {plural(self.short, 'read')} here.</li>",
        ]
        return f'<ul class="legend">{"".join(items)}</ul>'


    def _status_section(self) -> str:
        rows = "".join(
            f"<tr><td>{escape(s)}</td><td class=\"n\">{n}</td></tr>" for s, n in sorted(self.statuses.items(), key=lambda x: (-x[1], x[0]))
        )
        dup = self.statuses.get(STATUS_DUPLICATE, 0)
        return (
            '<section id="statuses"><h2>Reads per status</h2><table><thead><tr><th>status</th><th>reads</th></tr></thead>'
            f"<tbody>{rows}</tbody></table><p>Duplicate ids: {dup}.</p></section>"
        )

    def _length_section(self) -> str:
        labels = _length_labels()
        head = "".join(f"<th>{c}</th>" for c in (CALL_VIRUS, CALL_OTHERS, CALL_NA))
        body = "".join(
            f"<tr><td>{lab}</td>" + "".join(f'<td class="n">{cls.get(c, 0)}</td>' for c in (CALL_VIRUS, CALL_OTHERS, CALL_NA)) + "</tr>"
            for lab, cls in zip(labels, self.by_length)
            if cls
        )
        return (
            '<section id="lengths"><h2>Calls by read length</h2><div class="figs">'
            f"{_stacked_length_svg(labels, self.by_length)}"
            f"<table><thead><tr><th>length</th>{head}</tr></thead><tbody>{body}</tbody></table></div></section>"
        )

    def _tracks_section(self, tracks: list[_Track], left_out: int) -> str:
        parts = [
            '<section id="tracks"><h2>Window scores along contigs</h2>',
            f"<p>The {TOP_LONGEST} longest scored contigs and every contig with a viral region"
            f" (up to {MAX_REGION_TRACKS}, longest first). Each bar is one window at its position on the contig and"
            " height = window score; red = viral window, blue = non-viral, grey stretch = windows not scored; shaded ="
            " viral region; dashed line = 0.5.</p>",
        ]
        if not tracks:
            parts.append("<p>No contig longer than one window was scored.</p>")
        parts.extend(_track_svg(t) for t in tracks)
        if left_out > 0:
            parts.append(f"<p>{plural(left_out, 'more contig')} with a region {'is' if left_out == 1 else 'are'} not drawn;"
                         " see virus_regions.tsv.</p>")
        parts.append("</section>")
        return "\n".join(parts)


def _push(heap: list, entry: tuple, limit: int) -> None:
    if len(heap) < limit:
        heapq.heappush(heap, entry)
    elif entry[:2] > heap[0][:2]:
        heapq.heapreplace(heap, entry)


def _bin(score: float) -> int:
    return min(max(int(score * SCORE_BINS), 0), SCORE_BINS - 1)


def _length_class(length: int) -> int:
    for i, edge in enumerate(LENGTH_EDGES):
        if length < edge:
            return i
    return len(LENGTH_EDGES)


def _bp(n: int) -> str:
    return f"{n // 1000} kb" if n >= 1000 and n % 1000 == 0 else f"{n} bp"


def _length_labels() -> list[str]:
    labels, low = [], 0
    for edge in LENGTH_EDGES:
        labels.append(f"{_bp(low)}–{_bp(edge)}" if low else f"< {_bp(edge)}")
        low = edge
    labels.append(f"≥ {_bp(low)}")
    return labels


_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;max-width:1000px;color:#222;"
    "padding:0 16px}h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}"
    ".meta{color:#555}table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 10px;"
    "text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}.warnings li{color:#8a4b00;margin:4px 0}"
    ".dot{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:6px}.figs{display:flex;"
    "flex-wrap:wrap;gap:16px;align-items:flex-start}svg{background:#fff;border:1px solid #eee}svg text{font-size:11px;"
    "fill:#444}svg .title{font-size:13px;font-weight:bold;fill:#222}"
)


def _axis_ticks(top: int) -> list[int]:
    """About five round tick values from 0 to ``top``."""
    if top <= 0:
        return [0]
    raw = top / 5
    mag = 10 ** (len(str(int(raw))) - 1) if raw >= 1 else 1
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return list(range(0, top + 1, max(int(step), 1)))


def _histogram_svg(title: str, series: list[list[int]], names: tuple[str, str]) -> str:
    """Stacked histogram of scores in [0, 1] (series 0 red, series 1 blue)."""
    w, h, left, bottom, top = 460, 240, 46, 36, 28
    pw, ph = w - left - 12, h - top - bottom
    totals = [a + b for a, b in zip(*series)]
    ymax = max(max(totals), 1)
    bw = pw / SCORE_BINS
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
           f'aria-label="{escape(title)}"><text class="title" x="{left}" y="16">{escape(title)}</text>']
    for i in range(SCORE_BINS):
        y0 = top + ph
        for k, color in ((0, _COLORS[CALL_VIRUS]), (1, _COLORS[CALL_OTHERS])):
            n = series[k][i]
            if n:
                bh = ph * n / ymax
                y0 -= bh
                out.append(f'<rect x="{left + i * bw + 1:.1f}" y="{y0:.1f}" width="{bw - 2:.1f}" height="{bh:.1f}" '
                           f'fill="{color}"><title>{i / SCORE_BINS:.2f}–{(i + 1) / SCORE_BINS:.2f}: {n}</title></rect>')
    out.append(_axes(left, top, pw, ph, ymax))
    for x in (0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<text x="{left + x * pw:.1f}" y="{top + ph + 14}" text-anchor="middle">{x:g}</text>')
    out.append(f'<rect x="{w - 150}" y="6" width="10" height="10" fill="{_COLORS[CALL_VIRUS]}"/>'
               f'<text x="{w - 136}" y="15">{escape(names[0])}</text>'
               f'<rect x="{w - 150}" y="{h - 14}" width="10" height="10" fill="{_COLORS[CALL_OTHERS]}"/>'
               f'<text x="{w - 136}" y="{h - 5}">{escape(names[1])}</text>')
    out.append("</svg>")
    return "".join(out)


def _axes(left: float, top: float, pw: float, ph: float, ymax: int) -> str:
    parts = [f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#888"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#888"/>']
    for t in _axis_ticks(ymax):
        y = top + ph - ph * t / ymax
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{t}</text>')
    return "".join(parts)


def _stacked_length_svg(labels: list[str], classes: list[dict[str, int]]) -> str:
    w, h, left, bottom, top = 520, 250, 46, 56, 24
    pw, ph = w - left - 12, h - top - bottom
    ymax = max([sum(c.values()) for c in classes] + [1])
    bw = pw / len(classes)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
           'aria-label="calls by read length"><text class="title" x="46" y="16">Reads per length class and call</text>']
    for i, (lab, cls) in enumerate(zip(labels, classes)):
        y0 = top + ph
        for call in (CALL_VIRUS, CALL_OTHERS, CALL_NA):
            n = cls.get(call, 0)
            if n:
                bh = ph * n / ymax
                y0 -= bh
                out.append(f'<rect x="{left + i * bw + 3:.1f}" y="{y0:.1f}" width="{bw - 6:.1f}" height="{bh:.1f}" '
                           f'fill="{_COLORS[call]}"><title>{escape(lab)} {call}: {n}</title></rect>')
        x = left + (i + 0.5) * bw
        out.append(f'<text x="{x:.1f}" y="{top + ph + 12}" text-anchor="end" transform="rotate(-35 {x:.1f} {top + ph + 12})">'
                   f"{escape(lab)}</text>")
    out.append(_axes(left, top, pw, ph, ymax))
    out.append("</svg>")
    return "".join(out)


def _position_ticks(length: int) -> tuple[list[int], int, str]:
    """Round tick positions (1, 2 or 5 times a power of ten apart, 4-10 of them) along a contig of ``length`` bp,
    and the unit to label them in: ``(ticks, unit_bp, unit_name)``."""
    span = max(length, 1)
    step = 1
    while span / step > 10:
        step = _next_step(step)
    unit, name = (1_000_000, "Mb") if span >= 1_000_000 else (1_000, "kb") if span >= 5_000 else (1, "bp")
    return list(range(0, span + 1, step)), unit, name


def _next_step(step: int) -> int:
    """1 → 2 → 5 → 10 → 20 → 50 → ..."""
    lead = int(str(step)[0])
    return step * 5 // 2 if lead == 2 else step * 2


def _position_label(pos: int, unit: int, name: str) -> str:
    return f"{pos / unit:g} {name}" if pos else "0"


def _track_svg(t: _Track) -> str:
    """One contig: a bar per window at its real coordinates and height = window score (cf. drew_fig.py).

    Runs of unscored windows are drawn as one grey stretch and every bar is at least :data:`MIN_BAR_PX` wide, so a
    20 Mb contig with a few scored windows still shows them (a 500 bp window is 0.02 px there)."""
    w, h, left, right, top, bottom = 960, 150, 46, 12, 26, 30
    pw, ph = w - left - right, h - top - bottom

    def x(pos: float) -> float:
        return left + pw * (pos - 1) / max(t.length - 1, 1)

    def y(score: float) -> float:
        return top + ph * (1 - score)

    def width(start: int, end: int) -> float:
        return max(x(end) - x(start), MIN_BAR_PX)

    title = (f"{t.read_id} · {_human_bp(t.length)} · call {t.call} ({t.confidence}) · "
             f"{plural(sum(s is not None for s in t.scores), 'window')} scored of {len(t.scores)} · "
             f"{plural(len(t.regions), 'region')}")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="track" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'role="img" aria-label="{escape(t.read_id)}"><text class="title" x="{left}" y="16">{escape(title)}</text>']
    for r in t.regions:
        out.append(f'<rect class="region" x="{x(r.start):.1f}" y="{top}" width="{width(r.start, r.end):.1f}" '
                   f'height="{ph}" fill="#f6d5d1"><title>{r.kind} {r.start}-{r.end}, mean score {r.mean_score:.3f}</title></rect>')
    out.append(f'<line x1="{left}" y1="{y(0.5):.1f}" x2="{left + pw}" y2="{y(0.5):.1f}" stroke="#999" stroke-dasharray="4 3"/>')
    gap: list[int] | None = None  # [start, end] of the current run of unscored windows
    for (start, end), score, viral in zip(t.spans, t.scores, t.viral):
        if score is None:
            gap = [gap[0], end] if gap else [start, end]
            continue
        if gap:
            out.append(_gap_svg(x(gap[0]), width(*gap), top + ph - 4))
            gap = None
        color = _COLORS[CALL_VIRUS] if viral else _COLORS[CALL_OTHERS]
        out.append(f'<rect class="window" x="{x(start):.1f}" y="{y(score) - 1.5:.1f}" width="{width(start, end):.1f}" '
                   f'height="3" fill="{color}"><title>{start}-{end}: {score:.3f}</title></rect>')
    if gap:
        out.append(_gap_svg(x(gap[0]), width(*gap), top + ph - 4))
    out.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#888"/>'
               f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#888"/>')
    for v in (0, 0.5, 1):
        out.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    ticks, unit, name = _position_ticks(t.length)
    for pos in ticks:
        if pos <= 0.97 * t.length:  # a label at the very end would be cut off
            out.append(f'<text class="tick" x="{x(max(pos, 1)):.1f}" y="{top + ph + 14}" text-anchor="middle">'
                       f"{_position_label(pos, unit, name)}</text>")
    out.append(f'<text x="{left + pw}" y="{h - 2}" text-anchor="end">position ({name})</text></svg>')
    return "".join(out)


def _gap_svg(x0: float, width: float, y: float) -> str:
    return f'<rect class="unscored" x="{x0:.1f}" y="{y - 1.5:.1f}" width="{width:.1f}" height="3" fill="#bbb"/>'


def _human_bp(n: int) -> str:
    """``950 bp``, ``12.3 kb``, ``20.0 Mb``."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} Mb"
    if n >= 10_000:
        return f"{n / 1_000:.1f} kb"
    return f"{n} bp"
