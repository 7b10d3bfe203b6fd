"""Per-contig answers on constructed inputs with known answers: calls, confidence tiers, the NA rule, viral regions
with contig coordinates, virus.fna, and agreement with the original-format window table."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from conftest import INPUT_FA, expected
from virnucpro.calls import confidence, read_call
from virnucpro.cli import main
from virnucpro.fasta import read_fasta
from virnucpro.prepare import READS_HEADER, prepare
from virnucpro.regions import find_regions, viral_runs, window_spans
from virnucpro.summarize import summarize

HOST, VIRUS, DIP = 0.1, 0.9, 0.4  # virus probability of a window's one frame (score1 = 1 - score2)


def _dna(n: int, seed: int) -> str:
    return "".join(random.Random(seed).choices("ACGT", k=n))


def _tsv(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def build_sample(folder: Path, reads: list[tuple], chunk: int = 500) -> list[str]:
    """Write input.fa, a prepare-style reads.tsv and one frame table; returns the summarize arguments.

    Each read is ``(id, sequence, windows)`` where ``windows`` lists per window either ``None`` (no frame scored) or
    a list of virus probabilities, one per frame (F1, F2, ...); ``status`` may follow as a 4th item.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fasta, rows, frames = [], ["\t".join(READS_HEADER)], ["Sequence_ID\tPrediction\tscore1\tscore2"]
    for number, (read_id, seq, wins, *status) in enumerate(reads, start=1):
        fasta.append(f">{read_id} constructed\n{seq}\n")
        n_frames = 0
        for k, scores in enumerate(wins, start=1):
            for name, s2 in zip(("F1", "F2", "F3", "R1", "R2", "R3"), scores or []):
                frames.append(f"{read_id}_chunk_{k}{name}\t{'virus' if s2 > 0.5 else 'others'}\t{1 - s2:.6g}\t{s2:.6g}")
                n_frames += 1
        st = status[0] if status else ("ok" if n_frames else "no_stop_free_frame")
        expected_frames = n_frames if st != "not_embedded" else 6
        rows.append("\t".join(map(str, (read_id, "input.fa", number, len(seq), len(wins), expected_frames, 0,
                                        1 if expected_frames else 0, st))))
        if st == "not_embedded":  # prepare cut frames, but none came back from the embedders
            frames = [f for f in frames if not f.startswith(f"{read_id}_chunk_")]
    (folder / "input.fa").write_text("".join(fasta))
    (folder / "reads.tsv").write_text("\n".join(rows) + "\n")
    (folder / "frames.tsv").write_text("\n".join(frames) + "\n")
    return ["summarize", "--reads", str(folder / "reads.tsv"), "--frames", str(folder / "frames.tsv"),
            "--inputs", str(folder / "input.fa"), "--chunk-length", str(chunk), "--outdir", str(folder / "out"), "-q"]


PROVIRUS = _dna(6321, 1)  # 13 windows at 500 bp; the overlap rule puts window i at 486 * i (last one 489 bp)
PROVIRUS_WINDOWS = [[HOST]] * 4 + [[VIRUS], [VIRUS], [DIP], [VIRUS], [VIRUS]] + [[HOST]] * 2 + [[VIRUS]] + [[HOST]]
WHOLE = _dna(1200, 2)  # 3 windows at 0, 350, 700


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("constructed")
    reads = [
        ("provirus_host", PROVIRUS, PROVIRUS_WINDOWS),
        ("phage", WHOLE, [[0.2, 0.95], [0.97], [0.93, 0.6, 0.99]]),
        ("stops", _dna(900, 3), [None, None]),
        ("phage", _dna(300, 4), [], "duplicate_id"),
        ("lost", _dna(400, 5), [[0.9]], "not_embedded"),
        # one window: max score2 0.6 but max score1 0.9 (frame 2) → not viral by the original rule
        ("mixed_frames", _dna(450, 6), [[0.6, 0.1]]),
        ("gappy", _dna(3000, 7), [[VIRUS], None, None, [VIRUS], [VIRUS], [HOST]]),
    ]
    assert main(build_sample(folder, reads)) == 0
    return folder


def test_viral_segment_inside_host_is_one_region_with_contig_coordinates(sample: Path) -> None:
    regions = [r for r in _tsv(sample / "out" / "virus_regions.tsv") if r["read_id"] == "provirus_host"]
    # windows 5-9 (1-based) are viral but for one dip (bridged); the lone viral window 12 is not a region
    assert regions == [{"read_id": "provirus_host", "start": "1945", "end": "4388", "windows": "5",
                        "mean_score": f"{(4 * VIRUS + DIP) / 5:.4f}", "kind": "region"}]
    row = next(r for r in _tsv(sample / "out" / "virus_summary.tsv") if r["read_id"] == "provirus_host")
    assert (row["windows"], row["windows_scored"], row["windows_viral"], row["call"], row["regions"]) == ("13", "13", "5", "others", "1")
    records = {r.id: r.sequence for r in read_fasta(sample / "out" / "virus.fna")}
    assert records["provirus_host:1945-4388"] == PROVIRUS[1944:4388]
    assert "provirus_host" not in records  # the contig itself is not called virus


def test_whole_contig_call_and_fasta(sample: Path) -> None:
    regions = [r for r in _tsv(sample / "out" / "virus_regions.tsv") if r["read_id"] == "phage"]
    assert [(r["start"], r["end"], r["windows"], r["kind"]) for r in regions] == [("1", "1200", "3", "whole")]
    text = (sample / "out" / "virus.fna").read_text()
    assert ">phage call=virus confidence=high length=1200 coordinates=1-1200" in text
    records = list(read_fasta(sample / "out" / "virus.fna"))
    # input order; no second copy of a whole-contig region; a region of a contig called virus is written too
    assert [r.id for r in records] == ["provirus_host:1945-4388", "phage", "gappy", "gappy:1501-2500"]
    assert records[1].sequence == WHOLE and all(len(line) <= 60 for line in text.splitlines() if not line.startswith(">"))


def test_every_read_exactly_once_and_the_na_rule(sample: Path) -> None:
    rows = _tsv(sample / "out" / "virus_summary.tsv")
    assert [r["read_id"] for r in rows] == [r.id for r in read_fasta(sample / "input.fa")]
    assert list(rows[0]) == ["read_id", "length", "windows", "windows_scored", "windows_viral", "fraction_viral",
                             "mean_score", "max_score", "call", "confidence", "status", "regions", "coverage",
                             "viral_bp", "notes"]
    for r in rows:  # NA: nothing scored, or under 10% of the windows (none of these reads)
        assert (r["call"] == "NA") == (int(r["windows_scored"]) < max(0.1 * int(r["windows"]), 1)), r
        if r["call"] == "NA":
            assert r["confidence"] == r["fraction_viral"] == r["mean_score"] == r["max_score"] == "NA"
    by_status = {r["status"]: r for r in rows}
    assert set(by_status) == {"ok", "no_stop_free_frame", "duplicate_id", "not_embedded"}
    assert by_status["not_embedded"]["call"] == "NA" and by_status["no_stop_free_frame"]["windows"] == "2"


def test_window_score_is_max_virus_probability_and_verdict_follows_original_rule(sample: Path) -> None:
    row = next(r for r in _tsv(sample / "out" / "virus_summary.tsv") if r["read_id"] == "mixed_frames")
    assert (row["windows_viral"], row["mean_score"], row["max_score"], row["call"]) == ("0", "0.6000", "0.6", "others")
    assert row["confidence"] == "low"  # the scores sit on the virus side of 0.5 while the call says others
    phage = next(r for r in _tsv(sample / "out" / "virus_summary.tsv") if r["read_id"] == "phage")
    assert phage["mean_score"] == f"{(0.95 + 0.97 + 0.99) / 3:.4f}" and phage["fraction_viral"] == "1.0000"


def test_two_unscored_windows_split_a_run(sample: Path) -> None:
    regions = [r for r in _tsv(sample / "out" / "virus_regions.tsv") if r["read_id"] == "gappy"]
    spans = window_spans(3000, 500)
    assert spans == [(1, 500), (501, 1000), (1001, 1500), (1501, 2000), (2001, 2500), (2501, 3000)]
    assert [(r["start"], r["end"], r["windows"]) for r in regions] == [("1501", "2500", "2")]


@pytest.mark.parametrize(
    "viral,runs",
    [
        ([True, True, False, True, True], [(0, 4)]),  # one dip is bridged
        ([True, False, False, True], []),  # two break the run; single viral windows are no region
        ([False, True, False], []),
        ([True, None, True], [(0, 2)]),  # an unscored window counts like a dip
        ([True, True, False, False, True, True], [(0, 1), (4, 5)]),
        ([False, True, False, True, False], [(1, 3)]),
        ([True, False, True, False, True], [(0, 4)]),
        ([None, True, True, None], [(1, 2)]),  # runs start and end on viral windows
    ],
)
def test_region_rule(viral: list, runs: list) -> None:
    assert viral_runs(viral) == runs


def test_regions_need_more_than_one_window_and_use_real_window_coordinates() -> None:
    assert find_regions(window_spans(500, 500), [0.9], [True]) == []
    (r,) = find_regions(window_spans(601, 300), [0.2, 0.8, 0.9], [False, True, True])  # windows at 0, 200, 400 (last 201 bp)
    assert (r.start, r.end, r.windows, r.kind) == (201, 601, 2, "region")
    (r,) = find_regions(window_spans(1001, 500), [0.8, 0.7, 0.9], [True, True, True])  # windows at 0, 333, 666
    assert (r.start, r.end, r.kind, round(r.mean_score, 6)) == (1, 1001, "whole", 0.8)


@pytest.mark.parametrize(
    "call,scored,viral,mean,tier",
    [
        ("virus", 10, 10, 0.95, "high"),
        ("virus", 10, 8, 0.80, "high"),  # thresholds are inclusive
        ("virus", 1, 1, 0.99, "medium"),  # a single window is never high
        ("virus", 10, 7, 0.90, "medium"),  # agreement 0.7 < 0.8
        ("virus", 10, 10, 0.65, "medium"),
        ("virus", 10, 10, 0.64, "low"),  # margin 0.14 < 0.15
        ("virus", 2, 1, 0.90, "low"),  # agreement 0.5 < 0.6
        ("virus", 4, 2, 0.45, "low"),  # scores contradict the call
        ("others", 5, 0, 0.10, "high"),
        ("others", 5, 1, 0.30, "medium"),
        ("others", 3, 1, 0.10, "medium"),  # 2 of 3 agree (0.67)
        ("others", 1, 0, 0.60, "low"),
        ("NA", 0, 0, None, "NA"),
    ],
)
def test_confidence_tiers(call: str, scored: int, viral: int, mean: float | None, tier: str) -> None:
    assert read_call(scored, viral) == call
    assert confidence(call, scored, viral, mean) == tier


@pytest.mark.parametrize("chunk", [300, 500])
def test_window_counts_agree_with_the_original_window_table(tmp_path: Path, chunk: int) -> None:
    """On the golden set: windows_scored/windows_viral per read = rows/True rows of prediction_results_highestscore.csv."""
    prepare([INPUT_FA], tmp_path / "prep", chunk, n_shards=2, progress=False)
    rows = {line.split("\t")[0]: line for line in (expected(chunk) / "prediction_results.txt").read_text().splitlines()[1:]}
    tables = []
    for shard in (1, 2):
        ids = [r.id for r in read_fasta(tmp_path / "prep" / f"shard_{shard:04d}.nuc.fa")]
        table = tmp_path / f"{shard}.tsv"
        table.write_text("Sequence_ID\tPrediction\tscore1\tscore2\n" + "".join(rows[i] + "\n" for i in ids))
        tables.append(table)
    counts = summarize(tmp_path / "prep" / "reads.tsv", tables, tmp_path / "out", inputs=[INPUT_FA], chunk_length=chunk)
    scored, viral = Counter(), Counter()
    for line in (expected(chunk) / "prediction_results_highestscore.csv").read_text().splitlines()[1:]:
        window, is_virus = line.split("\t")
        read_id = window.rsplit("_chunk_", 1)[0]
        scored[read_id] += 1
        viral[read_id] += is_virus == "True"
    summary = _tsv(tmp_path / "out" / "virus_summary.tsv")
    reads = _tsv(tmp_path / "out" / "reads.tsv")
    assert len(summary) == len(reads) == 60 == counts["reads"]
    for s, r in zip(summary, reads):
        assert int(s["windows_scored"]) == scored[s["read_id"]] and int(s["windows_viral"]) == viral[s["read_id"]]
        assert (s["read_id"], s["call"], s["max_score"], s["status"]) == (r["read_id"], r["call"], r["max_virus_score"], r["status"])
    fasta_ids = {r.id.split(":")[0] for r in read_fasta(tmp_path / "out" / "virus.fna")}
    called = {s["read_id"] for s in summary if s["call"] == "virus"}
    with_region = {g["read_id"] for g in _tsv(tmp_path / "out" / "virus_regions.tsv")}
    assert fasta_ids == called | with_region and called


def test_inputs_that_do_not_match_reads_tsv_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = build_sample(tmp_path / "s", [("a", _dna(700, 8), [[0.9], [0.9]]), ("b", _dna(200, 9), [[0.2]])])
    assert main(args) == 0
    inputs = args.index("--inputs") + 1
    other = tmp_path / "other.fa"
    other.write_text(">a\n" + _dna(700, 8) + "\n>c\nACGT\n")
    assert main([*args[:inputs], str(other), *args[inputs + 1 :]]) == 2
    assert "record 2 is 'c'" in capsys.readouterr().err
    other.write_text(">a\n" + _dna(700, 8) + "\n")
    assert main([*args[:inputs], str(other), *args[inputs + 1 :]]) == 2
    assert "the inputs end before read 'b'" in capsys.readouterr().err
    other.write_text(">a\n" + _dna(700, 8) + "\n>b\n" + _dna(200, 9) + "\n>extra\nACGT\n")
    assert main([*args[:inputs], str(other), *args[inputs + 1 :]]) == 2
    assert "'extra') is not in" in capsys.readouterr().err
    chunk = args.index("--chunk-length") + 1
    assert main([*args[:chunk], "300", *args[chunk + 1 :]]) == 2  # 700 bp is 2 windows at 500 but 3 at 300
    assert "--chunk-length differs" in capsys.readouterr().err
