"""The embedded runner end to end: golden outputs, resume after SIGKILL/SIGTERM, invalidation, corruption, locking."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CLASSIFIER_PTH, DNABERT_DIR, ESM_PT, INPUT_FA, RUN_TOLERANCE, assert_golden_table, expected
from virnucpro.cli import main
from virnucpro.run import RunConfig, folder_lock, run_pipeline

FINAL = ("prediction_results.txt", "prediction_results_highestscore.csv", "reads.tsv")
MODELS = ["--dnabert", str(DNABERT_DIR), "--esm", str(ESM_PT), "--classifier", str(CLASSIFIER_PTH)]


def _run_args(inputs: list[Path], outdir: Path, chunk: int = 500, *extra: str) -> list[str]:
    return ["run", *map(str, inputs), "--outdir", str(outdir), "--chunk-length", str(chunk), *MODELS,
            "--device", "cpu", "--precision", "fp32", "-q", *extra]


def _rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


@pytest.mark.parametrize("chunk,shards", [(300, "1"), (500, "3")])
def test_run_reproduces_original_outputs(tmp_path: Path, chunk: int, shards: str) -> None:
    assert main(_run_args([INPUT_FA], tmp_path, chunk, "--shards", shards)) == 0
    assert_golden_table(tmp_path / "prediction_results.txt", expected(chunk) / "prediction_results.txt", RUN_TOLERANCE)
    name = "prediction_results_highestscore.csv"
    assert (tmp_path / name).read_bytes() == (expected(chunk) / name).read_bytes()
    reads = _rows(tmp_path / "reads.tsv")
    assert len(reads) == 61 and {r[0] for r in reads[1:]} >= {"pub_012", "pub_058"}
    assert (tmp_path / "manifest.json").exists() and (tmp_path / "run.log").exists()


@pytest.fixture(scope="module")
def orf_fasta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough stop-free reads to spread over many shards (so a kill lands mid-run)."""
    rng = random.Random(7)
    codons = [a + b + c for a in "ACGT" for b in "ACGT" for c in "ACGT" if a + b + c not in ("TAA", "TAG", "TGA")]
    path = tmp_path_factory.mktemp("orf") / "orf.fa"
    path.write_text("".join(f">orf{i} synthetic\n{''.join(rng.choices(codons, k=333))}A\n" for i in range(900)))
    return path


@pytest.fixture(scope="module")
def uninterrupted(orf_fasta: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    assert main(_run_args([orf_fasta], out, 500, "--shards", "12")) == 0
    return out


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_resume_after_kill_is_byte_identical(orf_fasta: Path, uninterrupted: Path, tmp_path: Path, sig: int) -> None:
    cmd = [sys.executable, "-m", "virnucpro", *_run_args([orf_fasta], tmp_path, 500, "--shards", "12")]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    marker = tmp_path / "work" / "shards" / "shard_0003.dna.h5"
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 143), err
    if sig == signal.SIGTERM:
        assert "Traceback" not in err and "re-run the same command to resume" in err
    assert not (tmp_path / "prediction_results.txt").exists()
    # nothing half-written under a final name: every HDF5 present opens as complete
    from virnucpro.h5io import h5_is_complete

    assert all(h5_is_complete(p) for p in (tmp_path / "work" / "shards").glob("*.h5"))
    # a shard counts as done once its stamp confirms it (a kill between rename and stamp means: redo it)
    done_before = len(list((tmp_path / "work" / "shards").glob("*.dna.h5.stamp.json")))
    assert 1 <= done_before < 12, "the signal arrived before or after embedding: the test proved nothing"
    assert main(_run_args([orf_fasta], tmp_path, 500, "--shards", "12")) == 0
    log = (tmp_path / "run.log").read_text()
    assert "reusing prepared shards" in log
    assert f"dna embeddings: {done_before}/12 shard(s) current" in log
    for name in FINAL:
        assert (tmp_path / name).read_bytes() == (uninterrupted / name).read_bytes(), name


def test_changed_parameters_and_corrupt_files_are_recomputed(orf_fasta: Path, uninterrupted: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(uninterrupted, tmp_path / "o")
    out = tmp_path / "o"
    (out / "run.log").unlink()
    victim = out / "work" / "shards" / "shard_0002.protein.h5"
    victim.write_bytes(victim.read_bytes()[:300])  # truncated by a crash of some other tool
    assert main(_run_args([orf_fasta], out, 500, "--shards", "12")) == 0
    log = (out / "run.log").read_text()
    assert "recomputing protein embeddings shard_0002.protein.h5: incomplete or corrupt file" in log
    assert "protein embeddings: 11/12 shard(s) current" in log and "dna embeddings: 12/12 shard(s) current" in log
    for name in FINAL:
        assert (out / name).read_bytes() == (uninterrupted / name).read_bytes()
    shard = out / "work" / "prepare" / "shard_0004.prot.fa"
    shard.write_text(shard.read_text()[:100])  # a truncated shard is detected by checksum and redone
    assert main(_run_args([orf_fasta], out, 500, "--shards", "12")) == 0
    assert "shard file shard_0004.prot.fa is missing or damaged" in (out / "run.log").read_text()
    for name in FINAL:
        assert (out / name).read_bytes() == (uninterrupted / name).read_bytes()
    assert main(_run_args([orf_fasta], out, 500, "--shards", "12", "--store-dtype", "float16")) == 0
    assert "changed store_dtype" in (out / "run.log").read_text()
    assert main(_run_args([orf_fasta], out, 500, "--shards", "6")) == 0
    assert "re-preparing: inputs or parameters changed" in (out / "run.log").read_text()


def test_second_run_on_same_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with folder_lock(tmp_path):
        assert main(_run_args([INPUT_FA], tmp_path)) == 6  # FolderBusy.exit_code
    assert "another virnucpro run is using this folder" in capsys.readouterr().err


def test_shards_spread_over_several_devices_give_the_same_result(tmp_path: Path) -> None:
    cfg = RunConfig(
        inputs=[INPUT_FA], outdir=tmp_path, chunk_length=300, dnabert=str(DNABERT_DIR), esm=str(ESM_PT),
        classifier=CLASSIFIER_PTH, n_shards=4, device="cpu", precision="fp32", progress=False, devices=["cpu", "cpu"],
    )
    manifest = run_pipeline(cfg)
    assert manifest["parameters"]["devices"] == ["cpu", "cpu"]
    name = "prediction_results_highestscore.csv"
    assert (tmp_path / name).read_bytes() == (expected(300) / name).read_bytes()


def test_env_is_not_required() -> None:
    assert "VIRNUCPRO_TEST_HOOK" not in os.environ  # no test-only switches in the product


def test_sequence_too_large_for_the_device_gets_a_status_not_a_dead_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import torch

    import virnucpro.embed as embed
    from virnucpro.fasta import read_fasta

    limit = 150  # proteins longer than this "do not fit" even alone
    real_load = embed.load_embedder

    def load_with_small_memory(kind: str, *args, **kwargs):
        embedder = real_load(kind, *args, **kwargs)
        if kind == "protein":

            def hook(rows: np.ndarray, lengths: np.ndarray) -> None:
                if lengths.max() > limit + 2:
                    raise torch.OutOfMemoryError("simulated")

            embedder.fault_hook = hook
        return embedder

    monkeypatch.setattr(embed, "load_embedder", load_with_small_memory)
    assert main(_run_args([INPUT_FA], tmp_path, 500, "--shards", "2")) == 0
    too_big = {r.id for r in read_fasta(expected(500) / "identified_protein.faa") if len(r.sequence) > limit}
    assert too_big
    want = [r for r in _rows(expected(500) / "prediction_results.txt") if r[0] not in too_big]
    got = _rows(tmp_path / "prediction_results.txt")
    assert [r[:2] for r in got] == [r[:2] for r in want]
    reads = {r[0]: r for r in _rows(tmp_path / "reads.tsv")[1:]}
    assert len(reads) == 60
    hit = {fid.split("_chunk_")[0] for fid in too_big}
    for read_id in hit:
        assert reads[read_id][8] in ("not_embedded", "partially_scored"), reads[read_id]
    assert any(reads[r][8] == "not_embedded" and reads[r][7] == "NA" for r in hit)
    assert "could not be embedded" in (tmp_path / "run.log").read_text()


def _slow_first_worker(index: int, device: str, job: int) -> tuple[int, str]:
    """Job function for the queue test (runs in a spawned worker): worker 0 is 15x slower than worker 1."""
    time.sleep(1.5 if index == 0 else 0.1)
    return index, device


def test_work_queue_pulls_jobs_dynamically_not_round_robin() -> None:
    from virnucpro.workqueue import run_on_devices

    done = list(run_on_devices(["cpu", "cpu"], list(range(12)), _slow_first_worker))
    assert sorted(job for job, _ in done) == list(range(12))  # every job exactly once
    by_worker = [sum(1 for _, (index, _) in done if index == w) for w in (0, 1)]
    # round-robin would give 6/6; pulling lets the fast worker take most of the queue
    assert by_worker[1] >= 8 and by_worker[0] <= 4, by_worker
    assert all(device == "cpu" for _, (_, device) in done)


def _fail_on_job_three(index: int, device: str, job: int) -> int:
    if job == 3:
        from virnucpro.errors import ModelError

        raise ModelError("job 3 cannot load its model")
    time.sleep(0.2)
    return job


def test_work_queue_stops_on_the_first_error() -> None:
    from virnucpro.errors import ModelError
    from virnucpro.workqueue import run_on_devices

    start = time.time()
    with pytest.raises(ModelError, match="job 3"):
        list(run_on_devices(["cpu", "cpu"], list(range(200)), _fail_on_job_three))
    assert time.time() - start < 60  # the other 196 jobs were cancelled, not run


def test_plan_devices_lists() -> None:
    from virnucpro.embed_jobs import plan_devices

    assert plan_devices("cpu,cpu") == ["cpu", "cpu"] and plan_devices("cpu") == ["cpu"]


def test_many_shards_by_default(tmp_path: Path) -> None:
    from virnucpro.cli import RUN_TOKENS_PER_SHARD
    from virnucpro.runconfig import DEFAULT_TOKENS_PER_SHARD

    assert RUN_TOKENS_PER_SHARD == DEFAULT_TOKENS_PER_SHARD  # what --help says is what a run does

    cfg = RunConfig(inputs=[INPUT_FA], outdir=tmp_path, chunk_length=500, dnabert="d", esm="e", classifier=CLASSIFIER_PTH)
    assert cfg.n_shards is None and cfg.tokens_per_shard == DEFAULT_TOKENS_PER_SHARD
    assert RunConfig(inputs=[], outdir=tmp_path, chunk_length=500, dnabert="d", esm="e", classifier=CLASSIFIER_PTH,
                     n_shards=3).tokens_per_shard is None


def test_two_workers_share_the_queue_and_resume(orf_fasta: Path, uninterrupted: Path, tmp_path: Path) -> None:
    """Both models on both workers, shards pulled from one queue; a damaged run resumes with only what is missing."""
    argv = _run_args([orf_fasta], tmp_path, 500, "--shards", "12", "--device", "cpu,cpu", "--workers", "1")
    assert main(argv) == 0
    log = (tmp_path / "run.log").read_text()
    for kind in ("dna", "protein"):
        workers = {line.split("(worker ")[1][0] for line in log.splitlines() if f" {kind} on cpu (worker " in line}
        assert workers == {"0", "1"}, (kind, workers)  # every model ran on both workers
    for name in FINAL:
        assert (tmp_path / name).read_bytes() == (uninterrupted / name).read_bytes(), name
    manifest = __import__("json").loads((tmp_path / "manifest.json").read_text())
    assert manifest["parameters"]["devices"] == ["cpu", "cpu"] and manifest["parameters"]["workers"] == 1
    shards = tmp_path / "work" / "shards"
    (shards / "shard_0005.protein.h5").unlink()
    (shards / "shard_0009.dna.h5.stamp.json").unlink()
    (tmp_path / "run.log").unlink()
    assert main(argv) == 0
    log = (tmp_path / "run.log").read_text()
    assert "dna embeddings: 11/12 shard(s) current" in log and "protein embeddings: 11/12 shard(s) current" in log
    assert log.count("embedded shard_") == 2
    for name in FINAL:
        assert (tmp_path / name).read_bytes() == (uninterrupted / name).read_bytes(), name


# --------------------------------------------------------------------------------------------------------------------
# no stale final tables: a rerun with other options that is stopped at any stage never leaves the earlier run's tables


def _raise_stop(*args, **kwargs):
    raise KeyboardInterrupt  # what Ctrl-C / a kill looks like to the code: nothing after this point runs


def _after(real):
    def wrapped(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    return wrapped


def _stop_before_stamp(real):
    def wrapped(output, fingerprint):
        if Path(output).name == "manifest.json":
            raise KeyboardInterrupt
        return real(output, fingerprint)

    return wrapped


#: Every stage boundary of a run, from the first thing after taking the folder to the last write: name → a patch of
#: virnucpro.run that stops the run there.
STOPS = {
    "before prepare": ("prepare", lambda real: _raise_stop),
    "after prepare": ("prepare", _after),
    "before embedding": ("run_embeddings", lambda real: _raise_stop),
    "after merge": ("merge_features", _after),
    "after predict": ("predict_frames", _after),
    "before summarize": ("summarize", lambda real: _raise_stop),
    "after summarize": ("summarize", _after),
    "after manifest": ("write_stamp", _stop_before_stamp),
}


@pytest.fixture(scope="module")
def runs_300_and_500(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    done = {}
    for chunk in (500, 300):
        done[chunk] = tmp_path_factory.mktemp(f"done{chunk}")
        assert main(_run_args([INPUT_FA], done[chunk], chunk, "--shards", "2")) == 0
    return done


def _finals(folder: Path) -> dict[str, bytes]:
    from virnucpro.summarize import OUTPUT_FILES

    return {n: (folder / n).read_bytes() for n in (*OUTPUT_FILES, "manifest.json") if (folder / n).exists()}


@pytest.mark.parametrize("stop", STOPS)
def test_rerun_with_other_options_stopped_at_any_stage_leaves_no_stale_table(
    stop: str, runs_300_and_500: dict[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import virnucpro.run as run

    out = tmp_path / "o"
    shutil.copytree(runs_300_and_500[500], out)  # a finished 500 bp run
    earlier = _finals(out)
    assert "prediction_results.txt" in earlier and "manifest.json" in earlier
    name, patch = STOPS[stop]
    monkeypatch.setattr(run, name, patch(getattr(run, name)))
    assert main(_run_args([INPUT_FA], out, 300, "--shards", "2")) == 130  # stopped like Ctrl-C
    left = _finals(out)
    for table, content in left.items():
        assert content != earlier[table], f"{table} of the 500 bp run survived a stopped 300 bp run ({stop})"
    current = _finals(runs_300_and_500[300])
    for table in left.keys() - {"manifest.json", "report.html", "summary.json"}:  # these hold times or folders
        assert left[table] == current[table], table  # whatever is left is the 300 bp run's own
    assert "removed the final tables of an earlier run" in (out / "run.log").read_text()
    if stop == "after summarize":  # the folder it leaves resumes to the end (kept to one stage: each run costs)
        monkeypatch.undo()
        assert main(_run_args([INPUT_FA], out, 300, "--shards", "2")) == 0
        assert (out / "prediction_results.txt").read_bytes() == current["prediction_results.txt"]


def test_resume_of_the_same_command_keeps_its_finished_tables(runs_300_and_500: dict[int, Path], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    import virnucpro.run as run

    out = tmp_path / "o"
    shutil.copytree(runs_300_and_500[300], out)
    before = _finals(out)
    (out / "work" / "shards" / "shard_0002.dna.h5").unlink()  # something left to redo
    monkeypatch.setattr(run, "run_embeddings", _raise_stop)
    assert main(_run_args([INPUT_FA], out, 300, "--shards", "2")) == 130
    assert _finals(out) == before  # its own tables: current, kept
    assert "removed the final tables" not in (out / "run.log").read_text()
