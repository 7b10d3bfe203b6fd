"""DNABERT-S re-implementation against the ORIGINAL's golden embeddings, and the strict loader's refusals."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import DNABERT_DIR, cosine_rows, expected, golden
from virnucpro.embed import load_embedder
from virnucpro.errors import ModelError
from virnucpro.h5io import read_matrix
from virnucpro.models.dnabert import alibi_slopes


def _embed(embedder, chunk: int, tmp_path: Path, tokens_per_batch: int | None) -> tuple[list[str], np.ndarray]:
    out = tmp_path / f"dna{chunk}-{tokens_per_batch}.h5"
    embedder.embed_fasta(expected(chunk) / "identified_nucleotide.fa", out, tokens_per_batch=tokens_per_batch, progress=False)
    table = read_matrix(out)
    return table.ids, table.matrix


@pytest.fixture(scope="module")
def dna():
    return load_embedder("dna", str(DNABERT_DIR), device="cpu", precision="fp32")


def test_alibi_slopes_follow_mosaicbert_rule() -> None:
    """Exactly the float32 values of MosaicBERT's rule (computed on the device, no host list)."""
    def exact(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32)

    assert torch.equal(alibi_slopes(4), exact([2**-2, 2**-4, 2**-6, 2**-8]))
    twelve = [2.0 ** -(i + 1) for i in range(8)] + [2**-0.5, 2**-1.5, 2**-2.5, 2**-3.5]
    assert torch.equal(alibi_slopes(12), exact(twelve))
    assert torch.equal(alibi_slopes(6), exact([2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]))


@pytest.mark.parametrize("attention", ["sdpa", "reference"])
@pytest.mark.parametrize("chunk", [300, 500])
@pytest.mark.parametrize("tokens_per_batch", [1, 700, 1_000_000])
def test_matches_original(dna, tmp_path: Path, chunk: int, attention: str, tokens_per_batch: int) -> None:
    dna.attention = attention
    ids, matrix = _embed(dna, chunk, tmp_path, tokens_per_batch)
    gold_ids, gold = golden("dnabert", chunk)
    assert ids == gold_ids  # rows in input order whatever the batching
    assert np.abs(matrix - gold).max() <= 1e-4
    dna.attention = "sdpa"


def test_bf16_close_to_fp32(tmp_path: Path) -> None:
    bf16 = load_embedder("dna", str(DNABERT_DIR), device="cpu", precision="bf16")
    assert bf16.dtype.dtype == torch.bfloat16
    _, matrix = _embed(bf16, 300, tmp_path, 4096)
    _, gold = golden("dnabert", 300)
    assert cosine_rows(matrix, gold).min() >= 0.999


def test_padding_does_not_change_result(dna) -> None:
    ids, tokens = dna.read_and_tokenize(expected(300) / "identified_nucleotide.fa")
    few = tokens[:5]
    alone = np.stack([dna.embed_batch([t])[0] for t in few])
    padded = dna.embed_batch(few, pad_to=max(len(t) for t in few) + 37)
    assert np.abs(alone - padded).max() <= 1e-5


def test_tokenizer_pad_id_and_case(dna) -> None:
    assert dna.encoder.pad_id == 3  # from the tokenizer's [PAD], not config.json's pad_token_id 0
    lower, upper = dna.encoder.tokenize(["a", "b"], ["acgtnacgt", "ACGTNACGT"])
    assert lower.tolist() == upper.tolist() and lower[0] == 1 and lower[-1] == 2


# -- loader refusals --------------------------------------------------------------------------------------------------


def _copy(tmp_path: Path, mutate) -> Path:
    folder = tmp_path / "dnabert"
    shutil.copytree(DNABERT_DIR, folder)
    (folder / "pytorch_model.bin").unlink()
    state = load_file(str(folder / "model.safetensors"))
    state = mutate(state)
    if state is not None:
        save_file(state, str(folder / "model.safetensors"))
    return folder


def _refused(folder: Path, *needles: str) -> None:
    with pytest.raises(ModelError) as err:
        load_embedder("dna", str(folder), device="cpu", precision="fp32")
    for needle in needles:
        assert needle in str(err.value)


def test_missing_key_is_named(tmp_path: Path) -> None:
    key = "encoder.layer.1.mlp.wo.bias"
    _refused(_copy(tmp_path, lambda s: {k: v for k, v in s.items() if k != key}), "missing", key)


def test_extra_key_is_named(tmp_path: Path) -> None:
    _refused(_copy(tmp_path, lambda s: {**s, "encoder.layer.0.extra.weight": torch.zeros(3)}), "unexpected", "encoder.layer.0.extra.weight")


def test_misshaped_tensor_is_named(tmp_path: Path) -> None:
    key = "encoder.layer.0.attention.self.Wqkv.weight"
    _refused(_copy(tmp_path, lambda s: {**s, key: torch.zeros(191, 64)}), key)


def test_config_disagreeing_with_weights(tmp_path: Path) -> None:
    folder = _copy(tmp_path, lambda s: None)
    config = json.loads((folder / "config.json").read_text())
    config["intermediate_size"] = 96
    (folder / "config.json").write_text(json.dumps(config))
    _refused(folder, "disagree", "encoder.layer.0.mlp.gated_layers.weight")


def test_bert_prefix_mlm_head_and_bin_accepted(tmp_path: Path) -> None:
    def wrap(state):
        out = {f"bert.{k}": v for k, v in state.items()}
        out["cls.predictions.decoder.weight"] = torch.zeros(256, 64)
        return out

    folder = _copy(tmp_path, wrap)
    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    embedder = load_embedder("dna", str(folder), device="cpu", precision="fp32")
    _, matrix = _embed(embedder, 300, tmp_path, 2048)
    assert np.abs(matrix - golden("dnabert", 300)[1]).max() <= 1e-4


def test_missing_folder_and_files(tmp_path: Path) -> None:
    _refused(tmp_path / "nowhere", "no such DNABERT-S folder")
    folder = _copy(tmp_path, lambda s: None)
    (folder / "tokenizer.json").unlink()
    _refused(folder, "tokenizer.json")


def test_slopes_are_finite_for_many_heads() -> None:
    assert all(math.isfinite(s) and 0 < s < 1 for s in alibi_slopes(40).tolist())
