"""Calls that rest on their evidence, and warnings that reach the user (issue 20, items 1-5 and 10).

Constructed cases with known answers: the coverage and short-read rules of :mod:`virnucpro.calls`, a 20 Mb contig with
76 scored windows out of 40,000 (regions, never a whole viral contig), the window rule explained where a user looks,
every warning in report.html and summary.json with counts and read ids (as the pipeline's SUMMARIZE step sees them,
and through ``virnucpro run``), run.log in words only, and the demo saying its models are random.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import CLASSIFIER_PTH, DNABERT_DIR, ESM_PT, INPUT_FA
from test_report import _parse
from test_summary import HOST, VIRUS, _dna, _tsv, build_sample
from virnucpro.calls import (
    HIGH_MIN_COVERAGE, MIN_CALL_COVERAGE, NOTE_FRAME, NOTE_LOW_COVERAGE, NOTE_SHORT, NOTE_TOO_LITTLE, call_read,
    confidence, read_call, viral_bases,
)
from virnucpro.cli import main
from virnucpro.fasta import read_fasta
from virnucpro.regions import find_regions, window_spans

ROOT = Path(__file__).resolve().parents[1]
BIG = 20_000_000  # 40,000 windows of exactly 500 bp
LONE = [100 + 500 * i for i in range(70)]  # 70 isolated viral windows
PAIRS = [30_000, 30_001, 35_000, 35_001, 39_000, 39_001]  # three runs of two viral windows: regions


def _big_windows() -> tuple[list, list, list]:
    spans = window_spans(BIG, 500)
    scores: list = [None] * len(spans)
    viral: list = [None] * len(spans)
    for k in LONE + PAIRS:
        scores[k], viral[k] = VIRUS, True
    return spans, scores, viral


# ---------------------------------------------------------------------------------------------------------------
# the rules, on their own


def test_twenty_mb_contig_with_76_viral_windows_gets_no_whole_call_but_its_regions() -> None:
    spans, scores, viral = _big_windows()
    assert len(spans) == 40_000 and spans[-1] == (BIG - 499, BIG)
    rc = call_read(scores, viral, length=BIG, chunk_length=500, spans=spans)
    assert (rc.windows, rc.windows_scored, rc.windows_viral) == (40_000, 76, 76)
    assert rc.coverage == pytest.approx(76 / 40_000) and rc.coverage < MIN_CALL_COVERAGE
    assert (rc.call, rc.confidence, rc.notes) == ("NA", "NA", (NOTE_TOO_LITTLE,))
    assert rc.viral_bp == 76 * 500
    regions = find_regions(spans, scores, viral)
    assert [(r.start, r.end, r.windows, r.kind) for r in regions] == [
        (500 * k + 1, 500 * k + 1000, 2, "region") for k in (30_000, 35_000, 39_000)
    ]


@pytest.mark.parametrize(
    "scored, viral, windows, call",
    [
        (76, 76, 40_000, "NA"),  # 0.19 % of a random 20 Mb contig
        (1, 1, 11, "NA"),  # 9 % < 10 %
        (1, 1, 10, "virus"),  # exactly 10 % is enough (the lowest coverage of any real read measured)
        (3, 1, 10, "others"),
        (0, 0, 5, "NA"),
        (2, 1, None, "virus"),  # without the window count only the majority rule applies
    ],
)
def test_call_needs_a_tenth_of_the_windows_scored(scored: int, viral: int, windows: int | None, call: str) -> None:
    assert read_call(scored, viral, windows) == call


@pytest.mark.parametrize(
    "coverage, short, tier",
    [(1.0, False, "high"), (HIGH_MIN_COVERAGE, False, "high"), (0.2, False, "medium"), (1.0, True, "low"),
     (0.2, True, "low")],
)
def test_confidence_drops_with_low_coverage_and_for_short_reads(coverage: float, short: bool, tier: str) -> None:
    assert confidence("virus", 10, 10, 0.95, coverage=coverage, short=short) == tier


def test_viral_bases_count_overlapping_windows_once() -> None:
    spans = window_spans(1200, 500)
    assert spans == [(1, 500), (400, 899), (799, 1200)]
    assert viral_bases(spans, [True, True, False]) == 899
    assert viral_bases(spans, [True, None, True]) == 500 + 402
    assert viral_bases(spans, [None, None, None]) == 0


# ---------------------------------------------------------------------------------------------------------------
# the tables, the FASTA and the report, as the pipeline's SUMMARIZE step writes them


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("big")
    _, scores, _ = _big_windows()
    wins = [None if s is None else [s] for s in scores]
    assert main(build_sample(folder, [("random20mb", "ACGT" * (BIG // 4), wins)])) == 0
    return folder / "out"


def test_big_contig_tables_say_how_much_the_call_rests_on(big: Path) -> None:
    (row,) = _tsv(big / "virus_summary.tsv")
    assert (row["call"], row["confidence"], row["coverage"], row["viral_bp"], row["notes"], row["regions"]) == (
        "NA", "NA", "0.0019", "38000", NOTE_TOO_LITTLE, "3")
    records = list(read_fasta(big / "virus.fna"))
    assert [r.id for r in records] == ["random20mb:15000001-15001000", "random20mb:17500001-17501000",
                                       "random20mb:19500001-19501000"]
    assert all(len(r.sequence) == 1000 for r in records)  # never the whole 20 Mb
    assert "kind=region coordinates=15000001-15001000" in (big / "virus.fna").read_text()
    summary = json.loads((big / "summary.json").read_text())
    assert summary["unscored"] == {NOTE_TOO_LITTLE: 1} and summary["reads_na"] == 1
    assert summary["windows"] == 40_000 and summary["windows_scored"] == 76
    (warning,) = summary["warnings"]
    assert (warning["reason"], warning["count"], warning["examples"]) == (NOTE_TOO_LITTLE, 1, ["random20mb"])


def test_big_contig_track_has_a_readable_axis_and_every_scored_window_visible(big: Path) -> None:
    html = (big / "report.html").read_text()
    parsed = _parse(html)
    assert not parsed.errors and not parsed.stack and not parsed.external
    (track,) = re.findall(r'<svg [^>]*class="track".*?</svg>', html)
    assert "random20mb · 20.0 Mb · call NA (NA) · 76 windows scored of 40000 · 3 regions" in track
    labels = re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', track)
    assert labels == ["0", "2 Mb", "4 Mb", "6 Mb", "8 Mb", "10 Mb", "12 Mb", "14 Mb", "16 Mb", "18 Mb"]
    assert "position (Mb)" in track
    bars = re.findall(r'<rect class="window" x="[^"]*" y="[^"]*" width="([^"]*)"', track)
    assert len(bars) == 76 and min(map(float, bars)) >= 2.0
    gaps = re.findall(r'<rect class="unscored"', track)
    assert 0 < len(gaps) <= 77  # runs of unscored windows, not 39,924 separate marks
    assert len(track) < 100_000


@pytest.fixture(scope="module")
def warned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("warned")
    reads = [
        ("read50", _dna(50, 1), [[0.89, 0.03]]),  # frame 2: score1 0.97 > 0.89, so the window is not viral
        ("read66", _dna(66, 2), [[0.95]]),
        ("bad1", "ACGTJJJACGT", [], "invalid_characters"),
        ("bad2", "ACGT" * 20 + "*", [], "invalid_characters"),
        ("rna1", _dna(700, 3).replace("T", "U"), [[VIRUS], [VIRUS]]),
        ("read50", _dna(50, 4), [], "duplicate_id"),
        ("lost", _dna(600, 5), [[0.9], [0.9]], "not_embedded"),
        ("host", _dna(1200, 6), [[HOST], [HOST], [HOST]]),
        ("sparse", _dna(4000, 7), [[VIRUS], [VIRUS]] + [None] * 6),  # 2 of 8 windows scored: coverage 0.25
        ("sparser", _dna(4500, 8), [[VIRUS], [VIRUS]] + [None] * 7),  # 2 of 9: 0.22 < 0.25, so medium at most
    ]
    args = build_sample(folder, reads)
    args.remove("-q")
    assert main(args) == 0
    return folder / "out"


def test_short_read_is_low_and_the_window_rule_is_explained(warned: Path) -> None:
    rows: dict = {}
    for r in _tsv(warned / "virus_summary.tsv"):
        rows.setdefault(r["read_id"], r)  # the first read50 (the second is a duplicate id)
    r50 = rows["read50"]
    assert (r50["max_score"], r50["call"], r50["confidence"]) == ("0.89", "others", "low")
    assert r50["notes"] == f"{NOTE_SHORT},{NOTE_FRAME}"
    assert (rows["read66"]["call"], rows["read66"]["confidence"], rows["read66"]["notes"]) == ("virus", "low", NOTE_SHORT)
    assert (rows["host"]["confidence"], rows["host"]["notes"], rows["host"]["coverage"]) == ("high", "-", "1.0000")
    html = (warned / "report.html").read_text()
    legend = html[html.index('<ul class="legend">') :]
    assert "still be <i>others</i>: another frame of the same window scored more confidently non-viral" in legend
    assert f"<code>{NOTE_FRAME}</code>; 1 read here" in legend
    assert "reads shorter than half the window (&lt; 250 bp): 2 reads here" in legend
    assert "windows were scored (1 read here)" in legend
    assert [(rows[r]["coverage"], rows[r]["confidence"], rows[r]["notes"]) for r in ("sparse", "sparser")] == [
        ("0.2500", "high", "-"), ("0.2222", "medium", NOTE_LOW_COVERAGE)]


def test_every_warning_reaches_report_and_json_with_counts_and_ids(warned: Path, capsys: pytest.CaptureFixture) -> None:
    summary = json.loads((warned / "summary.json").read_text())
    by_reason = {w["reason"]: w for w in summary["warnings"]}
    assert {r: (w["count"], w["examples"]) for r, w in by_reason.items()} == {
        "short_reads": (2, ["read50", "read66"]),
        "invalid_characters": (2, ["bad1", "bad2"]),
        "rna_read_as_dna": (1, ["rna1"]),
        "duplicate_id": (1, ["read50"]),
        "not_embedded": (1, ["lost"]),
    }
    assert summary["unscored"] == {"duplicate_id": 1, "invalid_characters": 2, "not_embedded": 1}
    assert summary["reads_na"] == sum(summary["unscored"].values())
    html = (warned / "report.html").read_text()
    section = html[html.index('<section id="warnings">') : html.index("</section>")]
    assert "None." not in section
    for w in summary["warnings"]:
        assert f"<li>{w['message']}" in section.replace("&lt;", "<")
        assert ", ".join(w["examples"]) in section
    assert "2 reads hold letters that are not nucleotide codes (status invalid_characters): left unscored" in section
    assert "1 read contains U (RNA)" in section and "e.g. rna1" in section


def test_report_names_the_sample_and_counts_in_words(tmp_path: Path) -> None:
    args = build_sample(tmp_path, [("only", _dna(1200, 9), [[VIRUS], [VIRUS], [VIRUS]])])
    assert main(args) == 0
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<title>VirNucPro report: out</title>" in html  # summarize's default: the folder, the sample in the pipeline
    assert "· 1 read from input.fa ·" in html and "1 viral region on 1 contig (" in html
    assert "(s)" not in html


# ---------------------------------------------------------------------------------------------------------------
# virnucpro run: warnings of every stage, run.log in words, the sample as the title


@pytest.fixture(scope="module")
def run_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("runwarn")
    sample = folder / "gut_sample7.fa"
    sample.write_text(INPUT_FA.read_text() + ">bad_letters\nACGTACGTJJJJACGT\n>rna_read\n" + _dna(600, 11).replace("T", "U") + "\n")
    out = folder / "out"
    args = ["run", str(sample), "--outdir", str(out), "--chunk-length", "500", "--dnabert", str(DNABERT_DIR),
            "--esm", str(ESM_PT), "--classifier", str(CLASSIFIER_PTH), "--device", "cpu", "--precision", "fp32", "-q"]
    assert main(args) == 0
    return out


def test_run_report_and_manifest_carry_every_warning(run_out: Path) -> None:
    html = (run_out / "report.html").read_text()
    assert "<title>VirNucPro report: gut_sample7</title>" in html
    section = html[html.index('<section id="warnings">') : html.index("</section>")]
    assert "is not a published VirNucPro classifier" in section  # logged at validation, before run.log existed
    assert "(status invalid_characters)" in section and "e.g. bad_letters" in section
    assert "contains U (RNA)" in section and "e.g. rna_read" in section
    manifest = json.loads((run_out / "manifest.json").read_text())
    reasons = {w["reason"] for w in manifest["counts"]["warnings"]}
    assert {"run", "invalid_characters", "rna_read_as_dna"} <= reasons
    assert manifest["counts"]["unscored"]["invalid_characters"] == 1
    assert json.loads((run_out / "summary.json").read_text())["warnings"] == manifest["counts"]["warnings"]


def test_run_log_is_words_and_its_counts_match_the_tables(run_out: Path) -> None:
    lines = (run_out / "run.log").read_text().splitlines()
    messages = [line.split(": ", 1)[1] for line in lines]
    assert not [m for m in messages if m.startswith("{") or "{'" in m or '{"' in m]
    rows = _tsv(run_out / "virus_summary.tsv")
    calls = [r["call"] for r in rows]
    assert messages[-2].startswith(
        f"done: {len(rows)} reads: {calls.count('virus')} virus (") and f", {calls.count('others')} others (" in messages[-2]
    assert f", {calls.count('NA')} NA (" in messages[-2]
    # "windows" is what prepare cuts, everywhere; scored windows are named so
    cut = sum(int(r["windows"]) for r in rows)
    scored = sum(int(r["windows_scored"]) for r in rows)
    assert any(re.search(rf"prepared {len(rows)} reads → {cut} windows → ", m) for m in messages)
    assert any(f"{cut} windows cut, {scored} scored (" in m for m in messages)


def test_demo_says_its_models_are_random() -> None:
    text = (ROOT / "Makefile").read_text()
    demo = text[text.index("\ndemo:") : text.index("\ntest:")]
    assert re.search(r"@echo .*random.*meaningless", demo)
