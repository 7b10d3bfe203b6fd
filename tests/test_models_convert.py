"""``models convert`` (ESM-2 .pt → memory-mapped safetensors, classifier detected) and the verify-once checksum."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from conftest import CLASSIFIER_PTH, ESM_PT, expected, golden_in_order
from virnucpro.checksum import file_sha256
from virnucpro.cli import main
from virnucpro.embed import load_embedder
from virnucpro.errors import ModelError
from virnucpro.models.classifier import load_classifier


def _embed_all(embedder) -> tuple[list[str], np.ndarray]:
    ids, tokens = embedder.read_and_tokenize(expected(300) / "identified_protein.faa")
    out = np.zeros((len(ids), embedder.dim), dtype=np.float32)
    for rows, values in embedder.embed_tokens(tokens, 4096):
        out[rows] = values
    return ids, out


def test_esm_converted_to_safetensors_loads_identically(tmp_path: Path) -> None:
    target = tmp_path / "esm2_tiny.safetensors"
    assert main(["models", "convert", "--input", str(ESM_PT), "--output", str(target), "-q"]) == 0
    with safe_open(str(target), framework="pt") as handle:
        meta = json.loads(handle.metadata()["virnucpro_esm2"])
        assert meta["config"]["layers"] == 2 and meta["source_sha256"] == file_sha256(ESM_PT)
        assert not any(k.startswith(("lm_head", "encoder.", "contact_head")) for k in handle.keys())
    ids, converted = _embed_all(load_embedder("protein", str(target), device="cpu", precision="fp32"))
    _, original = _embed_all(load_embedder("protein", str(ESM_PT), device="cpu", precision="fp32"))
    assert np.array_equal(converted, original)
    assert np.abs(converted - golden_in_order("esm", 300, ids)).max() <= 1e-4


def test_bf16_conversion_keeps_rotary_frequencies_fp32(tmp_path: Path) -> None:
    target = tmp_path / "esm2_tiny_bf16.safetensors"
    assert main(["models", "convert", "--input", str(ESM_PT), "--output", str(target), "--dtype", "bf16", "-q"]) == 0
    with safe_open(str(target), framework="pt") as handle:
        dtypes = {k: handle.get_tensor(k).dtype for k in handle.keys()}
    assert dtypes["layers.0.self_attn.rot_emb.inv_freq"] == torch.float32
    assert dtypes["layers.0.fc1.weight"] == torch.bfloat16


def test_classifier_still_converted_by_the_same_command(tmp_path: Path) -> None:
    target = tmp_path / "classifier.safetensors"
    assert main(["models", "convert", "--input", str(CLASSIFIER_PTH), "--output", str(target), "-q"]) == 0
    a, b = load_classifier(CLASSIFIER_PTH), load_classifier(target)
    x = torch.randn(5, 128)
    assert torch.equal(a(x), b(x))
    assert main(["models", "convert", "--input", str(CLASSIFIER_PTH), "--output", str(target), "--dtype", "bf16", "-q"]) != 0


def test_foreign_safetensors_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ModelError, match="not an ESM-2 file"):
        load_embedder("protein", str(foreign), device="cpu")


def test_checksum_recorded_once_reused_only_while_size_and_mtime_match(tmp_path: Path) -> None:
    """A big model file is hashed once; the sidecar is trusted only for the same size and mtime (else re-hashed)."""
    from virnucpro import checksum

    model = tmp_path / "big.pt"
    model.write_bytes(os.urandom(1 << 16) * 1025)  # just over the 64 MiB sidecar threshold
    digest = file_sha256(model)
    sidecar = tmp_path / ".big.pt.sha256"
    record = json.loads(sidecar.read_text())
    assert record["sha256"] == digest and record["size"] == model.stat().st_size
    checksum._memo.clear()
    sidecar.write_text(json.dumps({**record, "sha256": "f" * 64}))  # proves the record is used, not the bytes
    assert file_sha256(model) == "f" * 64
    checksum._memo.clear()
    os.utime(model, ns=(record["mtime_ns"] + 10**9, record["mtime_ns"] + 10**9))  # file touched: not trusted
    assert file_sha256(model) == digest
