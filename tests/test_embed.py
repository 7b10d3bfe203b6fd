"""The shared embedding stage: batching, OOM back-off, empty input, CLI, device/precision rules, model download."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DNABERT_DIR, ESM_PT, expected, golden, golden_in_order
from virnucpro.cli import main
from virnucpro.device import resolve_device, resolve_precision
from virnucpro.embed import SequenceTooLarge, describe_model, load_embedder, plan_batches
from virnucpro.errors import InputError, ModelError, NumericError
from virnucpro.h5io import MatrixReader, read_matrix
from virnucpro.models import hub


def test_device_and_precision_rules() -> None:
    cpu = resolve_device("cpu")
    assert cpu.type == "cpu"
    assert resolve_precision("auto", cpu).dtype == torch.float32  # CPU never defaults to bf16
    assert resolve_precision("bf16", cpu).dtype == torch.bfloat16
    assert resolve_precision("fp16", cpu).dtype == torch.float16
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(InputError, match="no CUDA device"):
            resolve_device("cuda:0")
    with pytest.raises(InputError):
        resolve_device("tpu")
    with pytest.raises(InputError):
        resolve_precision("fp8", cpu)


def test_batches_respect_padded_budget() -> None:
    lengths = np.array([5, 40, 12, 40, 7, 100, 3])
    batches = plan_batches(lengths, 80)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    for rows in batches:
        assert len(rows) == 1 or lengths[rows].max() * len(rows) <= 80
    assert lengths[batches[0]].tolist() == [100]  # longest first; too long for the budget → alone


@pytest.mark.parametrize("kind", ["dna", "protein"])
def test_oom_halves_batches_and_loses_nothing(kind: str, tmp_path: Path) -> None:
    model = str(DNABERT_DIR if kind == "dna" else ESM_PT)
    embedder = load_embedder(kind, model, device="cpu", precision="fp32")
    seen: list[int] = []

    def oom_above_three(rows: np.ndarray, lengths: np.ndarray) -> None:
        seen.append(len(rows))
        if len(rows) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    embedder.fault_hook = oom_above_three
    name = "identified_nucleotide.fa" if kind == "dna" else "identified_protein.faa"
    out = tmp_path / "o.h5"
    stats = embedder.embed_fasta(expected(300) / name, out, tokens_per_batch=1_000_000, progress=False)
    table = read_matrix(out)
    gold = golden("dnabert", 300)[1] if kind == "dna" else golden_in_order("esm", 300, table.ids)
    assert stats["oom_retries"] > 0 and seen[0] == len(table.ids) and max(s for s in seen[1:] if s <= 3) <= 3
    assert stats["sequences"] == len(table.ids) == len(gold)
    assert np.abs(table.matrix - gold).max() <= 1e-4


def test_single_sequence_oom_names_it(tmp_path: Path) -> None:
    embedder = load_embedder("dna", str(DNABERT_DIR), device="cpu", precision="fp32")

    def too_big(rows: np.ndarray, lengths: np.ndarray) -> None:
        assert all(tokens[i].size == n for i, n in zip(rows, lengths))
        if (lengths > 8).any():
            raise torch.OutOfMemoryError("simulated")

    fa = tmp_path / "two.fa"
    fa.write_text(">only_one desc\nACGTACGTACGTTGCATGCAGGATCCATTAGC\n>small\nACG\n")
    ids, tokens = embedder.read_and_tokenize(fa)
    embedder.fault_hook = too_big
    # the library call names the sequence that cannot fit ...
    with pytest.raises(SequenceTooLarge, match="only_one") as err:
        list(embedder.embed_tokens(tokens, 4096, ids=ids))
    assert err.value.seq_id == "only_one"
    # ... while a file run records it as an invalid row and goes on (the read gets a status downstream)
    stats = embedder.embed_fasta(fa, tmp_path / "o.h5", progress=False)
    assert stats["too_large"] == 1
    reader = MatrixReader(tmp_path / "o.h5")
    assert reader.ids == ["only_one", "small"] and reader.valid.tolist() == [False, True]
    reader.close()
    assert not list(tmp_path.glob(".o.h5*"))


@pytest.mark.parametrize("kind,model", [("dna", DNABERT_DIR), ("protein", ESM_PT)])
def test_empty_input_gives_empty_file(kind: str, model: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    out = tmp_path / "e.h5"
    stats = load_embedder(kind, str(model), device="cpu").embed_fasta(empty, out, progress=False)
    table = read_matrix(out)
    assert table.ids == [] and table.matrix.shape == (0, 64) and table.attrs["dim"] == 64
    assert stats["sequences"] == 0 and stats["batches"] == 0


def test_non_finite_values_are_refused(tmp_path: Path) -> None:
    embedder = load_embedder("dna", str(DNABERT_DIR), device="cpu")
    with torch.no_grad():
        embedder.encoder.module.embeddings.LayerNorm.weight.fill_(float("nan"))
    fa = tmp_path / "x.fa"
    fa.write_text(">a\nACGT\n>b\nGGCC\n")
    with pytest.raises(NumericError):
        embedder.embed_fasta(fa, tmp_path / "x.h5", progress=False)


@pytest.mark.parametrize("command,model,name,kind", [
    ("embed-dna", DNABERT_DIR, "identified_nucleotide.fa", "dnabert"),
    ("embed-protein", ESM_PT, "identified_protein.faa", "esm"),
])
def test_cli_writes_hdf5_in_input_order(command: str, model: Path, name: str, kind: str, tmp_path: Path) -> None:
    out = tmp_path / "out.h5"
    argv = [command, "--model", str(model), "--input", str(expected(500) / name), "--output", str(out),
            "--tokens-per-batch", "600", "--device", "cpu", "--precision", "fp32", "-q"]
    assert main(argv) == 0
    table = read_matrix(out)
    file_ids = [line[1:].split()[0] for line in (expected(500) / name).read_text().splitlines() if line.startswith(">")]
    assert table.ids == file_ids
    assert np.abs(table.matrix - golden_in_order(kind, 500, file_ids)).max() <= 1e-4
    attrs = table.attrs
    assert attrs["model_name"] == str(model) and len(attrs["model_sha256"]) == 64 and attrs["precision"] == "fp32"
    assert attrs["kind"] == ("dna" if kind == "dnabert" else "protein") and attrs["tokens_per_batch"] == 600
    assert attrs["dim"] == 64 and "tool_version" in attrs
    ident = describe_model(attrs["kind"], str(model), device="cpu", precision="fp32")
    assert all(attrs[k] == v for k, v in ident.items())


def test_cli_store_float16(tmp_path: Path) -> None:
    out = tmp_path / "half.h5"
    argv = ["embed-dna", "--model", str(DNABERT_DIR), "--input", str(expected(300) / "identified_nucleotide.fa"),
            "--output", str(out), "--store-dtype", "float16", "--device", "cpu", "-q"]
    assert main(argv) == 0
    assert np.abs(read_matrix(out).matrix - golden("dnabert", 300)[1]).max() <= 1e-2


def test_cli_errors_are_one_line_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fa = expected(300) / "identified_protein.faa"
    assert main(["embed-protein", "--model", str(tmp_path / "missing.pt"), "--input", str(fa), "--output", str(tmp_path / "o.h5"), "-q"]) == ModelError.exit_code
    assert main(["embed-dna", "--model", str(DNABERT_DIR), "--input", str(tmp_path / "nope.fa"), "--output", str(tmp_path / "o.h5"), "--device", "cpu", "-q"]) == InputError.exit_code
    assert main(["embed-dna", "--model", str(DNABERT_DIR), "--input", str(fa), "--output", str(tmp_path / "o.h5"), "--tokens-per-batch", "0", "--device", "cpu", "-q"]) == InputError.exit_code
    assert "Traceback" not in capsys.readouterr().err


def test_models_download_writes_checksums(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[str] = []

    def fake_fetch(url: str, dest: Path, **_: object) -> Path:
        fetched.append(url)
        dest.write_bytes(url.encode())
        return dest

    def fake_snapshot(repo_id: str, *, revision=None, local_dir=None) -> Path:
        assert repo_id == "zhihan1996/DNABERT-S"
        local_dir.mkdir(parents=True)
        for name in ("config.json", "tokenizer.json", "pytorch_model.bin"):
            (local_dir / name).write_text(name)
        return local_dir

    monkeypatch.setattr(hub, "fetch_url", fake_fetch)
    monkeypatch.setattr(hub, "hf_snapshot", fake_snapshot)
    folder = tmp_path / "models"
    assert main(["models", "download", "--dir", str(folder), "-q"]) == 0
    assert "https://dl.fbaipublicfiles.com/fair-esm/models/esm2_t36_3B_UR50D.pt" in fetched
    assert any(u.endswith("/300_model.pth") for u in fetched) and any(u.endswith("/500_model.pth") for u in fetched)
    lines = (folder / "checksums.sha256").read_text().splitlines()
    listed = {}
    for line in lines:
        digest, rel = line.split("  ", 1)
        listed[rel] = digest
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest
    assert {"dnabert-s/config.json", "esm2_t36_3B_UR50D.pt", "esm2_t36_3B_UR50D-contact-regression.pt", "300_model.pth", "500_model.pth"} <= set(listed)


def test_models_download_network_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "hf_snapshot", lambda *a, **k: (_ for _ in ()).throw(ModelError("cannot fetch zhihan1996/DNABERT-S: offline")))
    assert main(["models", "download", "--dir", str(tmp_path), "--skip-esm", "-q"]) == ModelError.exit_code


def test_fetch_url_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot download"):
        hub.fetch_url("http://127.0.0.1:9/nothing.pt", tmp_path / "x.pt", timeout=2)
    assert list(tmp_path.iterdir()) == []
