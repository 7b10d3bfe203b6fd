"""The whole bad-input matrix through ``virnucpro run``: for every row, no traceback, the documented exit status, one
clear line naming the file, and nothing half-written. Disk full, read-only file systems and permission errors are
injected (a tiny tmpfs is not available in CI): the OSError is raised where the operating system would raise it.

Rows that fail before any work (inputs, options, output folder, models) must not even create ``--outdir``.
"""

from __future__ import annotations

import builtins
import errno
import gzip
import io
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import torch

from conftest import CLASSIFIER_PTH, DNABERT_DIR, ESM_PT, INPUT_FA, RUN_TOLERANCE, assert_golden_table, expected
from virnucpro.atomic import TMP_MARK
from virnucpro.cli import main
from virnucpro.errors import FolderBusy, InputError, ModelError, StorageError
from virnucpro.fasta import read_fasta
from virnucpro.h5io import h5_is_complete
from virnucpro.lock import folder_lock

FINAL = ("prediction_results.txt", "prediction_results_highestscore.csv", "reads.tsv", "manifest.json")
MODELS = {"--dnabert": str(DNABERT_DIR), "--esm": str(ESM_PT), "--classifier": str(CLASSIFIER_PTH)}


def run_args(inputs: list[str | Path], outdir: Path, **models: str) -> list[str]:
    chosen = {**MODELS, **{f"--{k}": v for k, v in models.items()}}
    return ["run", *map(str, inputs), "--outdir", str(outdir), "--chunk-length", "500",
            *[x for kv in chosen.items() for x in kv], "--device", "cpu", "--precision", "fp32", "-q"]


def call(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """``virnucpro ARGV`` in this process: (exit status, stderr)."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    return code, err


def assert_clean_failure(code: int, err: str, want_code: int, needle: str) -> None:
    assert code == want_code, err
    assert "Traceback" not in err and needle in err, err
    errors = [line for line in err.splitlines() if " ERROR: " in line]
    assert len(errors) == 1, err


def assert_nothing_half_written(outdir: Path) -> None:
    """No temp file, no final table, and every HDF5 left under a final name opens as complete."""
    if not outdir.exists():
        return
    assert not [p for p in outdir.rglob("*") if TMP_MARK in p.name]
    assert not [name for name in FINAL if (outdir / name).exists()]
    assert all(h5_is_complete(p) for p in outdir.rglob("*.h5"))


# --------------------------------------------------------------------------------------------------------------------
# fixtures: bad files and models, and one good run to compare with


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.fa").write_bytes(b"")
    (d / "binary.fa").write_bytes(bytes(range(256)) * 4)
    (d / "notfasta.fa").write_text("sequence_id,sequence\nr1,ACGT\n")
    (d / "latin1.fa").write_bytes(b">r1\nACGTACGT\n>r2\nACGT\n>r3 caf\xe9 sample\nACGT\n")
    shutil.copy(expected(500) / "identified_protein.faa", d / "protein.fa")
    (d / "aligned.fa").write_text(">a\nACGT--ACGTACGTAC---GTACGGT\n>b\nACG-TACGTTTGACCA..\n")
    (d / "rna.fa").write_text("".join(line if line.startswith(">") else line.replace("T", "U").replace("t", "u")
                                      for line in INPUT_FA.read_text().splitlines(keepends=True)))
    (d / "alln.fa").write_text(">allN\n" + "N" * 600 + "\n" + "\n".join(INPUT_FA.read_text().splitlines()[:6]) + "\n")
    (d / "truncated.fa.gz").write_bytes(gzip.compress(INPUT_FA.read_bytes())[:700])
    (d / "a_folder").mkdir()
    # models: a 3-class classifier, one of the wrong width, garbage, a DNABERT-S folder without tokenizer
    hidden = 8
    for name, inputs, outputs in (("three_class.pt", 128, 3), ("wide.pt", 3328, 2)):
        torch.save({
            "hidden_layer.weight": torch.zeros(hidden, inputs), "hidden_layer.bias": torch.zeros(hidden),
            "bn1.weight": torch.ones(hidden), "bn1.bias": torch.zeros(hidden), "bn1.running_mean": torch.zeros(hidden),
            "bn1.running_var": torch.ones(hidden), "output_layer.weight": torch.zeros(outputs, hidden),
            "output_layer.bias": torch.zeros(outputs),
        }, d / name)
    (d / "garbage.pth").write_text("this is not a model\n")
    shutil.copytree(DNABERT_DIR, d / "dnabert_no_tokenizer")
    (d / "dnabert_no_tokenizer" / "tokenizer.json").unlink()
    shutil.copytree(DNABERT_DIR, d / "dnabert_bad_weights")
    from safetensors.torch import load_file, save_file

    weights = load_file(str(DNABERT_DIR / "model.safetensors"))
    weights.pop("embeddings.LayerNorm.weight")  # one tensor short: a truncated conversion
    save_file(weights, str(d / "dnabert_bad_weights" / "model.safetensors"))
    (d / "a_file").write_text("x")
    return d


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("good") / "out"
    assert main(run_args([INPUT_FA], out)) == 0
    return out


def same_tables(a: Path, b: Path) -> bool:
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in ("prediction_results.txt", "prediction_results_highestscore.csv"))


# --------------------------------------------------------------------------------------------------------------------
# rows that must fail before any work: exit status, message, --outdir not even created


@dataclass(frozen=True)
class Early:
    inputs: Callable[[Path], list[str | Path]]
    models: Callable[[Path], dict[str, str]]
    code: int
    needle: str
    extra: tuple[str, ...] = ()


EARLY = {
    # inputs
    "missing input": Early(lambda b: [b / "missing.fa"], lambda b: {}, InputError.exit_code, "missing.fa: no such file"),
    "directory as input": Early(lambda b: [b / "a_folder"], lambda b: {}, InputError.exit_code, "a_folder: is a directory"),
    "second input missing": Early(lambda b: [INPUT_FA, b / "gone.fa"], lambda b: {}, InputError.exit_code, "gone.fa: no such file"),
    # options
    "shards 0": Early(lambda b: [INPUT_FA], lambda b: {}, InputError.exit_code, "--shards must be", ("--shards", "0")),
    "shards 5000": Early(lambda b: [INPUT_FA], lambda b: {}, InputError.exit_code, "--shards must be between 1 and 1000", ("--shards", "5000")),
    "tokens per batch 0": Early(lambda b: [INPUT_FA], lambda b: {}, InputError.exit_code, "--tokens-per-batch-dna must be", ("--tokens-per-batch-dna", "0")),
    "device typo": Early(lambda b: [INPUT_FA], lambda b: {}, InputError.exit_code, "--device 'gpu0': expected auto, cpu, cuda or cuda:N", ("--device", "gpu0")),
    "device absent": Early(lambda b: [INPUT_FA], lambda b: {}, InputError.exit_code, "--device cuda:99: ", ("--device", "cuda:99")),
    # classifier
    "classifier missing": Early(lambda b: [INPUT_FA], lambda b: {"classifier": str(b / "nope.pth")}, ModelError.exit_code, "nope.pth: classifier file not found"),
    "classifier is a folder": Early(lambda b: [INPUT_FA], lambda b: {"classifier": str(b / "a_folder")}, ModelError.exit_code, "a_folder: is a folder"),
    "classifier garbage": Early(lambda b: [INPUT_FA], lambda b: {"classifier": str(b / "garbage.pth")}, ModelError.exit_code, "garbage.pth"),
    "classifier with 3 outputs": Early(lambda b: [INPUT_FA], lambda b: {"classifier": str(b / "three_class.pt")}, ModelError.exit_code, "3 outputs"),
    "classifier of another width": Early(lambda b: [INPUT_FA], lambda b: {"classifier": str(b / "wide.pt")}, ModelError.exit_code, "takes 3328 features, but DNABERT-S (64) + ESM-2 (64) give 128"),
    # ESM-2
    "esm missing": Early(lambda b: [INPUT_FA], lambda b: {"esm": str(b / "nope.pt")}, ModelError.exit_code, "nope.pt: no such ESM-2 checkpoint"),
    "esm garbage": Early(lambda b: [INPUT_FA], lambda b: {"esm": str(b / "garbage.pth")}, ModelError.exit_code, "garbage.pth: cannot read ESM-2 checkpoint"),
    "esm is a DNABERT-S file": Early(lambda b: [INPUT_FA], lambda b: {"esm": str(DNABERT_DIR / "pytorch_model.bin")}, ModelError.exit_code, "not a fair-esm ESM-2 checkpoint"),
    # DNABERT-S
    "dnabert missing": Early(lambda b: [INPUT_FA], lambda b: {"dnabert": str(b / "nope")}, ModelError.exit_code, "nope: no such DNABERT-S folder"),
    "dnabert without tokenizer": Early(lambda b: [INPUT_FA], lambda b: {"dnabert": str(b / "dnabert_no_tokenizer")}, ModelError.exit_code, "missing tokenizer.json"),
    "dnabert weights not matching its config": Early(lambda b: [INPUT_FA], lambda b: {"dnabert": str(b / "dnabert_bad_weights")}, ModelError.exit_code, "weights do not match the architecture: missing embeddings.LayerNorm.weight"),
    "dnabert is a file": Early(lambda b: [INPUT_FA], lambda b: {"dnabert": str(ESM_PT)}, ModelError.exit_code, "DNABERT-S must be a folder"),
    "dnabert and esm swapped": Early(lambda b: [INPUT_FA], lambda b: {"dnabert": str(ESM_PT), "esm": str(DNABERT_DIR)}, ModelError.exit_code, "DNABERT-S must be a folder"),
}


@pytest.mark.parametrize("row", EARLY, ids=list(EARLY))
def test_refused_before_any_work(row: str, bad: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    case = EARLY[row]
    outdir = tmp_path / "out"
    code, err = call(run_args(case.inputs(bad), outdir, **case.models(bad)) + list(case.extra), capsys)
    assert_clean_failure(code, err, case.code, case.needle)
    assert not outdir.exists(), "failed checks must not create --outdir"


def test_bf16_the_cpu_kernels_cannot_run_is_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU with AMX and ``ATEN_CPU_CAPABILITY=default``/``avx2`` PyTorch's bf16 attention stops with this error
    (this test CPU has no AMX, so the kernel is made to fail as it does there)."""
    import torch

    from virnucpro.device import check_cpu_precision

    def vnni_failure(*args, **kwargs):
        raise RuntimeError("pack_vnni2 is only supported when avx512 is supported")

    check_cpu_precision.cache_clear()
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", vnni_failure)
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    code, err = call(run_args([INPUT_FA], tmp_path / "out") + ["--precision", "bf16"], capsys)
    assert_clean_failure(code, err, InputError.exit_code,
                         "--precision bf16 cannot run on this CPU with ATEN_CPU_CAPABILITY=avx2: PyTorch's bfloat16 "
                         "kernels failed (pack_vnni2 is only supported when avx512 is supported); use --precision fp32")
    assert not (tmp_path / "out").exists()
    check_cpu_precision.cache_clear()


def test_bf16_on_cpu_runs_and_says_what_it_does(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from virnucpro.device import check_cpu_precision

    check_cpu_precision.cache_clear()
    code, err = call(run_args([INPUT_FA], tmp_path / "out") + ["--precision", "bf16"], capsys)
    assert code == 0, err
    note = "--precision bf16 on CPU: weights and activations in bfloat16; scores move slightly from fp32's"
    assert err.count(note) == 1 and (tmp_path / "out" / "run.log").read_text().count(note) == 1


def _original_classifier_class(monkeypatch: pytest.MonkeyPatch) -> type:
    """The class as the original's train.py defines it, ``__main__.MLPClassifier``, for pickles made the old ways."""
    import sys

    import torch

    class MLPClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden_layer, self.bn1 = torch.nn.Linear(128, 8), torch.nn.BatchNorm1d(8)
            self.dropout, self.output_layer = torch.nn.Dropout(0.5), torch.nn.Linear(8, 2)

    MLPClassifier.__module__, MLPClassifier.__qualname__ = "__main__", "MLPClassifier"
    monkeypatch.setattr(sys.modules["__main__"], "MLPClassifier", MLPClassifier, raising=False)
    return MLPClassifier


@pytest.mark.parametrize("how", ["pickle.dump", "torch.save before 1.6"])
def test_classifier_pickled_the_old_ways_is_refused_with_a_safe_way_out(how: str, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    import torch

    model, path = _original_classifier_class(monkeypatch)().eval(), tmp_path / "old.pth"
    if how == "pickle.dump":
        path.write_bytes(pickle.dumps(model))
    else:
        torch.save(model, path, _use_new_zipfile_serialization=False)
    code, err = call(run_args([INPUT_FA], tmp_path / "out", classifier=str(path)), capsys)
    assert_clean_failure(code, err, ModelError.exit_code, "save only its weights, torch.save(model.state_dict()")
    assert "weights_only" not in err and "Warning" not in err and not (tmp_path / "out").exists()
    # the way out it gives works: the weights alone, even in the old format, are read
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=False)
    from virnucpro.models.classifier import load_classifier

    assert load_classifier(path).input_dim == 128


def test_outdir_is_a_file_or_under_one(bad: Path, capsys: pytest.CaptureFixture) -> None:
    for outdir, needle in ((bad / "a_file", "a_file: is a file, but a folder is needed here"),
                           (bad / "a_file" / "sub", "a_file: is a file, but a folder is needed here (needed for")):
        code, err = call(run_args([INPUT_FA], outdir), capsys)
        assert_clean_failure(code, err, StorageError.exit_code, needle)
    assert (bad / "a_file").read_text() == "x"


def test_bad_choice_is_a_usage_error(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    argv = run_args([INPUT_FA], tmp_path / "out")
    argv[argv.index("--chunk-length") + 1] = "400"
    code, err = call(argv, capsys)
    assert code == InputError.exit_code and "invalid choice: 400" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_folder_locked_by_another_process(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with folder_lock(tmp_path):
        code, err = call(run_args([INPUT_FA], tmp_path), capsys)
    assert_clean_failure(code, err, FolderBusy.exit_code, "is using this folder (lock held")
    assert_nothing_half_written(tmp_path)


# --------------------------------------------------------------------------------------------------------------------
# bad input content: found while reading, after the checks; exit 2 with the file named, nothing half-written


@pytest.mark.parametrize("name,needle", [
    ("empty.fa", "empty.fa: no FASTA records"),
    ("binary.fa", "binary.fa: line 1: binary data"),
    ("notfasta.fa", "notfasta.fa: line 1: not a FASTA file"),
    ("truncated.fa.gz", "truncated.fa.gz: cannot read past record"),
    ("latin1.fa", "latin1.fa: record 3 (r3), line 5"),
    ("protein.fa", "is this a protein FASTA?"),
    ("aligned.fa", "aligned.fa: 2 of 2 records hold alignment gaps (e.g. record 1 (a) has '-'); VirNucPro needs unaligned"),
])
def test_bad_content_is_one_line_exit_2(name: str, needle: str, bad: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = call(run_args([bad / name], tmp_path / "out"), capsys)
    assert_clean_failure(code, err, InputError.exit_code, needle)
    assert_nothing_half_written(tmp_path / "out")


# --------------------------------------------------------------------------------------------------------------------
# input that is unusual but valid: exit 0, with a counted note or a status, never silently wrong


def test_rna_is_read_as_dna_with_a_counted_warning(bad: Path, good_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = call(run_args([bad / "rna.fa"], tmp_path), capsys)
    assert code == 0, err
    with_t = sum(1 for r in read_fasta(INPUT_FA) if "T" in r.sequence.upper())
    assert f"{with_t} read(s) contain U (RNA); U was read as T" in err
    assert same_tables(tmp_path, good_run)


def test_all_n_read_has_its_own_status(bad: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = call(run_args([bad / "alln.fa"], tmp_path), capsys)
    assert code == 0, err
    rows = {line.split("\t")[0]: line.split("\t") for line in (tmp_path / "reads.tsv").read_text().splitlines()[1:]}
    assert rows["allN"][8] == "no_translatable_codon" and rows["allN"][7] == "NA"


def test_streams_are_refused_by_run_with_a_way_out(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``run`` reads its inputs again (final tables, resume check): a stream is refused up front, not half-used.
    (``prepare`` streams them: tests/test_prepare.py.)"""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(INPUT_FA.read_bytes())))
    code, err = call(run_args(["-"], tmp_path / "stdin"), capsys)
    assert_clean_failure(code, err, InputError.exit_code, "<stdin>: run reads its inputs more than once")
    assert "give a .gz file as it is" in err and not (tmp_path / "stdin").exists()
    read_fd, write_fd = os.pipe()  # what bash's <(zcat reads.fa.gz) hands over: /dev/fd/N, a pipe
    try:
        code, err = call(run_args([f"/dev/fd/{read_fd}"], tmp_path / "pipe"), capsys)
    finally:
        os.close(write_fd)
        os.close(read_fd)
    assert_clean_failure(code, err, InputError.exit_code, f"/dev/fd/{read_fd}: run reads its inputs more than once")
    assert not (tmp_path / "pipe").exists()


# --------------------------------------------------------------------------------------------------------------------
# the operating system says no: read-only file system, permission denied, disk full (injected)


def _deny_writes(monkeypatch: pytest.MonkeyPatch, root: Path, code: int) -> None:
    """Make every write under ``root`` fail with ``code`` as the kernel would (mkdir, open for writing)."""
    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
    root = root.resolve()

    def inside(path: object) -> bool:
        return isinstance(path, (str, bytes, os.PathLike)) and Path(os.fsdecode(path)).resolve().is_relative_to(root)

    def fail(path: object) -> OSError:
        return OSError(code, os.strerror(code), os.fsdecode(path))  # type: ignore[arg-type]

    def fake_open(file, mode="r", *args, **kwargs):
        if inside(file) and any(c in mode for c in "wax+"):
            raise fail(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise fail(path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if inside(path):
            raise fail(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


@pytest.mark.parametrize("code,words", [(errno.EROFS, "Read-only file system (EROFS)"), (errno.EACCES, "Permission denied (EACCES)")])
@pytest.mark.parametrize("exists", [False, True], ids=["new-outdir", "existing-outdir"])
def test_read_only_or_forbidden_outdir(code: int, words: str, exists: bool, tmp_path: Path, capsys, monkeypatch) -> None:
    ro = tmp_path / "mnt"
    ro.mkdir()
    outdir = ro / "out"
    if exists:
        outdir.mkdir()
    _deny_writes(monkeypatch, ro, code)
    status, err = call(run_args([INPUT_FA], outdir), capsys)
    monkeypatch.undo()
    assert_clean_failure(status, err, StorageError.exit_code, words)
    assert str(outdir) in err
    assert sorted(p.name for p in ro.rglob("*")) == (["out"] if exists else [])


def _disk_full_on(monkeypatch: pytest.MonkeyPatch, fragment: str) -> list[str]:
    """``fsync`` of a file whose path holds ``fragment`` fails with ENOSPC (where delayed allocation reports it)."""
    real_fsync = os.fsync
    hits: list[str] = []

    def fake_fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if fragment in path:
            hits.append(path)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fake_fsync)
    return hits


def _hdf5_write_fails_on(monkeypatch: pytest.MonkeyPatch, fragment: str) -> list[str]:
    """Writing rows into an HDF5 file whose name holds ``fragment`` fails as h5py reports a full disk."""
    real_setitem = h5py.Dataset.__setitem__
    hits: list[str] = []

    def fake_setitem(self, key, value):
        if fragment in self.file.filename and self.name != "/ids":
            hits.append(self.file.filename)
            raise OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: errno = 28, "
                                        "error message = 'No space left on device')")
        return real_setitem(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", fake_setitem)
    return hits


@pytest.mark.parametrize("inject,fragment,named", [
    (_disk_full_on, "reads.tsv" + TMP_MARK, "work/prepare/reads.tsv: No space left on device (ENOSPC)"),
    (_hdf5_write_fails_on, ".protein.h5" + TMP_MARK, "out: Can't synchronously write data"),
    (_disk_full_on, ".dna.h5" + TMP_MARK, "out: No space left on device (ENOSPC)"),
    (_disk_full_on, "prediction_results.txt" + TMP_MARK, "out/prediction_results.txt: No space left on device (ENOSPC)"),
], ids=["prepare", "embedding-write", "embedding-close", "summarize"])
def test_disk_full_leaves_nothing_half_written_and_resumes(inject, fragment: str, named: str, good_run: Path,
                                                           tmp_path: Path, capsys, monkeypatch) -> None:
    outdir = tmp_path / "out"
    hits = inject(monkeypatch, fragment)
    code, err = call(run_args([INPUT_FA], outdir), capsys)
    monkeypatch.undo()
    assert hits, f"nothing was written to {fragment}"
    assert_clean_failure(code, err, StorageError.exit_code, named)
    assert_nothing_half_written(outdir)
    assert "No space left on device" in (outdir / "run.log").read_text()
    if fragment.startswith("prediction_results"):  # after freeing space the same command finishes the run
        code, err = call(run_args([INPUT_FA], outdir), capsys)
        assert code == 0, err
        assert same_tables(outdir, good_run)


# --------------------------------------------------------------------------------------------------------------------
# what a good run records


def test_run_log_manifest_and_final_line(good_run: Path) -> None:
    log = (good_run / "run.log").read_text()
    assert f"started 20" in log and f": virnucpro run {INPUT_FA} --outdir {good_run}" in log  # the command line as typed
    for stage in ("validate", "prepare", "embed-dna", "embed-protein", "merge+predict", "summarize"):
        assert f"stage {stage}: " in log
    assert "models checked: DNABERT-S" in log and "virnucpro finished " in log
    final = [line for line in log.splitlines() if "done: " in line][-1]
    reads = {line.split("\t")[0]: line.split("\t")[7] for line in (good_run / "reads.tsv").read_text().splitlines()[1:]}
    calls = [reads[r] for r in reads]
    assert (f"done: 60 reads: {calls.count('virus')} virus" in final and f"{calls.count('others')} others" in final
            and f"{calls.count('NA')} NA" in final), final
    manifest = json.loads((good_run / "manifest.json").read_text())
    assert manifest["command_line"][:2] == ["virnucpro", "run"]
    assert manifest["started"] <= manifest["finished"] and manifest["started"].endswith("Z")
    assert set(manifest["durations_s"]) >= {"validate", "prepare", "embed-dna", "embed-protein", "summarize"}
    assert {"python", "torch", "numpy", "h5py", "tokenizers"} <= set(manifest["libraries"])
    assert manifest["libraries"]["torch"] == torch.__version__
    assert manifest["counts"]["reads_virus"] + manifest["counts"]["reads_others"] + manifest["counts"]["reads_na"] == 60


# --------------------------------------------------------------------------------------------------------------------
# a features file in the documented layout written by another tool


def _foreign_features(path: Path, ids: list[str], matrix: np.ndarray, **attrs: object) -> Path:
    with h5py.File(path, "w") as fh:
        fh.create_dataset("ids", data=np.array(ids, dtype="S"))  # fixed-length bytes, as many tools write them
        fh.create_dataset("features", data=matrix)
        for key, value in attrs.items():
            fh.attrs[key] = value
    return path


def test_features_from_another_tool_are_accepted(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from virnucpro.h5io import read_matrix

    rng = np.random.default_rng(3)
    ids = [f"r{i}_chunk_1F1" for i in range(303)]
    matrix = rng.normal(size=(303, 128)).astype(np.float32)
    plain = _foreign_features(tmp_path / "plain.h5", ids, matrix)
    table = read_matrix(plain)
    assert table.ids == ids and np.array_equal(table.matrix, matrix)
    code, err = call(["predict", "--features", str(plain), "--classifier", str(CLASSIFIER_PTH), "--output", str(tmp_path / "f.tsv"), "-q"], capsys)
    assert code == 0, err
    assert len((tmp_path / "f.tsv").read_text().splitlines()) == 304
    # refused: explicitly marked incomplete, or contradicting itself, with words that say which
    for name, attrs, needle in (
        ("unfinished.h5", {"complete": False}, "marked incomplete"),
        ("rows.h5", {"rows": 300}, "attribute rows=300 but the file holds 303 ids"),
        ("dim.h5", {"dim": 3328}, "attribute dim=3328 but dataset 'features' has 128 columns"),
    ):
        path = _foreign_features(tmp_path / name, ids, matrix, **attrs)
        code, err = call(["predict", "--features", str(path), "--classifier", str(CLASSIFIER_PTH), "--output", str(tmp_path / "x.tsv"), "-q"], capsys)
        assert_clean_failure(code, err, InputError.exit_code, needle)
    short = _foreign_features(tmp_path / "short.h5", ids[:300], matrix)
    code, err = call(["predict", "--features", str(short), "--classifier", str(CLASSIFIER_PTH), "--output", str(tmp_path / "x.tsv"), "-q"], capsys)
    assert_clean_failure(code, err, InputError.exit_code, "300 ids but dataset 'features' has 303 rows")
    assert not (tmp_path / "x.tsv").exists()


def test_readme_says_what_the_demo_really_matches(good_run: Path) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "digit for digit" not in readme  # it was not true: scores differ in the 7th decimal
    # "every frame gets the same label", scores "agree to about six decimal places"
    assert_golden_table(good_run / "prediction_results.txt", expected(500) / "prediction_results.txt", RUN_TOLERANCE)
    name = "prediction_results_highestscore.csv"
    assert (good_run / name).read_bytes() == (expected(500) / name).read_bytes()  # "byte-identical"
    assert "every frame gets the same label" in readme and "`prediction_results_highestscore.csv` is byte-identical" in readme
