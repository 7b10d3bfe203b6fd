"""The per-sample paths the pipeline relies on, run through the real CLI (what each module's one command does).

workflows/virnucpro.nf embeds only shards with frames (manifest.json "shards"[]."nuc"/"frames") and keeps the first
shard of a sample that has none, so a frame-less sample still reaches SUMMARIZE and every read is reported.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from virnucpro.cli import main

ROOT = Path(__file__).resolve().parents[2]
REF = ROOT / "tests" / "data" / "reference"
DATA = ROOT / "tests" / "data" / "pipeline"


def _run(*argv: str) -> None:
    assert main([*argv, "--quiet"]) == 0, argv


def _score_shard(tmp_path: Path, shards: Path, shard: dict) -> Path:
    """EMBED_DNA, EMBED_PROTEIN, MERGE and PREDICT on one shard, as the modules call them; the frames table."""
    _run("embed-dna", "--model", str(REF / "models" / "dnabert"), "--input", str(shards / shard["nuc"]),
         "--output", str(tmp_path / "s.dna.h5"), "--device", "cpu", "--precision", "fp32")
    _run("embed-protein", "--model", str(REF / "models" / "esm2_t2_tiny.pt"), "--input", str(shards / shard["prot"]),
         "--output", str(tmp_path / "s.protein.h5"), "--device", "cpu", "--precision", "fp32")
    _run("merge", "--dna", str(tmp_path / "s.dna.h5"), "--protein", str(tmp_path / "s.protein.h5"),
         "--output", str(tmp_path / "s.features.h5"))
    _run("predict", "--features", str(tmp_path / "s.features.h5"), "--classifier", str(REF / "models" / "classifier.pth"),
         "--output", str(tmp_path / "s.frames.tsv"), "--chunk-length", "300")
    return tmp_path / "s.frames.tsv"


def test_frameless_sample_flows_through_every_stage(tmp_path):
    """PREPARE → (kept empty shard) EMBED_DNA/EMBED_PROTEIN → MERGE → PREDICT → SUMMARIZE, as the modules call them."""
    shards = tmp_path / "shards"
    _run("prepare", str(DATA / "frameless.fa"), "--outdir", str(shards), "--prefix", "frameless", "--chunk-length", "300")
    manifest = json.loads((shards / "manifest.json").read_text())
    # the keys shardsToEmbed() reads, and at least one shard file pair even without frames
    assert manifest["shards"] and all({"nuc", "prot", "frames"} <= set(s) for s in manifest["shards"])
    assert sum(s["frames"] for s in manifest["shards"]) == 0
    first = manifest["shards"][0]
    assert (shards / first["nuc"]).is_file() and (shards / first["prot"]).is_file()

    _score_shard(tmp_path, shards, first)
    out = tmp_path / "frameless"
    _run("summarize", "--reads", str(shards / "reads.tsv"), "--frames", str(tmp_path / "s.frames.tsv"),
         "--inputs", str(DATA / "frameless.fa"), "--chunk-length", "300", "--outdir", str(out))

    with open(out / "virus_summary.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    with open(shards / "reads.tsv") as fh:
        prepared = {r["read_id"]: r for r in csv.DictReader(fh, delimiter="\t")}
    assert [r["read_id"] for r in rows] == ["nnn_1", "nnn_2"]
    # every read reported with call NA and the status prepare gave it (not "ok": no frame was embedded)
    assert all(prepared[r["read_id"]]["frames"] == "0" for r in rows)
    assert all(r["call"] == "NA" and r["status"] == prepared[r["read_id"]]["status"] != "ok" for r in rows)
    for name in ("prediction_results.txt", "prediction_results_highestscore.csv", "reads.tsv", "virus_regions.tsv",
                 "virus.fna", "report.html"):
        assert (out / name).is_file(), name


def test_empty_sample_flows_through_every_stage_with_allow_empty(tmp_path):
    """A FASTA with zero records: PREPARE (--allow-empty, as the module passes it) keeps one empty shard, and the
    sample ends in header-only tables instead of an error that would stop every other sample."""
    empty = DATA / "empty.fa"
    assert empty.stat().st_size == 0
    assert main(["prepare", str(empty), "--outdir", str(tmp_path / "refused"), "--chunk-length", "300", "--quiet"]) == 2
    shards = tmp_path / "shards"
    _run("prepare", str(empty), "--outdir", str(shards), "--prefix", "empty", "--chunk-length", "300", "--allow-empty")
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["inputs"][0]["records"] == 0 and len(manifest["shards"]) == 1
    first = manifest["shards"][0]
    _score_shard(tmp_path, shards, first)
    out = tmp_path / "empty"
    _run("summarize", "--reads", str(shards / "reads.tsv"), "--frames", str(tmp_path / "s.frames.tsv"),
         "--inputs", str(empty), "--chunk-length", "300", "--outdir", str(out))
    assert (out / "virus_summary.tsv").read_text().count("\n") == 1  # header only
    assert (out / "reads.tsv").read_text().count("\n") == 1
    assert (out / "report.html").is_file()


def test_same_named_files_of_one_sample_are_both_prepared(tmp_path):
    """PREPARE stages input/1/reads.fa and input/2/reads.fa; prepare reads both, in order."""
    staged = []
    for i, lane in enumerate(("lane1", "lane2"), start=1):
        target = tmp_path / "input" / str(i) / "reads.fa"
        target.parent.mkdir(parents=True)
        target.write_text((DATA / lane / "reads.fa").read_text())
        staged.append(str(target))
    _run("prepare", *staged, "--outdir", str(tmp_path / "shards"), "--prefix", "lanes", "--chunk-length", "300")
    with open(tmp_path / "shards" / "reads.tsv") as fh:
        ids = [r["read_id"] for r in csv.DictReader(fh, delimiter="\t")]
    assert ids == ["lane1_r0", "lane1_r1", "lane1_r2", "lane2_r0", "lane2_r1"]
