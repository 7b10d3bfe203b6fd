"""The checkpoint layouts of the PUBLISHED model files load, exactly their globals are allowed, anything else is refused.

What the real files pickle is written down, with its sources, in docs/models.md ("What the checkpoint files
contain"). The files built here pickle exactly those globals (checked by reading the pickle opcodes), so the allow-list
is tested against the real layout, not only against the tiny reference files (whose ESM ``cfg`` is an omegaconf
``DictConfig``).
"""

from __future__ import annotations

import argparse
import collections
import pickle
import fractions
import pickletools
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import DNABERT_DIR, ESM_PT, expected, golden
from virnucpro.embed import load_embedder
from virnucpro.errors import ModelError
from virnucpro.models.check import check_esm
from virnucpro.models.checkpoint import load_esm_pickle
from virnucpro.models.esm import tokenize_proteins

#: The globals ``esm2_t36_3B_UR50D.pt`` pickles (docs/models.md): its fp16 state dict and the ``argparse.Namespace``
#: in ``cfg['model']``.
ESM2_3B_GLOBALS = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch.HalfStorage", "argparse.Namespace"}
#: What a Hugging Face ``pytorch_model.bin`` (``torch.save`` of a ``state_dict()``, fp32) pickles.
HF_BIN_GLOBALS = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch.FloatStorage"}


def pickled_globals(path: Path) -> set[str]:
    """Every ``module.name`` the checkpoint's pickle references (GLOBAL and STACK_GLOBAL opcodes)."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    found: set[str] = set()
    strings: list[str] = []
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            found.add(str(arg).replace(" ", "."))
        elif op.name == "STACK_GLOBAL":
            found.add(f"{strings[-2]}.{strings[-1]}")
        elif isinstance(arg, str):
            strings.append(arg)
    return found


def _published_esm(tmp_path: Path, cfg_model: object, name: str = "esm2_published.pt", **extra: object) -> Path:
    """The tiny reference weights in the published file's layout: fp16 ``OrderedDict`` under ``model``, ``cfg`` a dict
    whose ``model`` entry is ``cfg_model``."""
    state = load_esm_pickle(ESM_PT)["model"]
    model = collections.OrderedDict((k, v.to(torch.float16)) for k, v in state.items())
    path = tmp_path / name
    torch.save({"model": model, "cfg": {"model": cfg_model, "common": {"seed": 1}}, **extra}, path)
    return path


def _cfg() -> dict:
    return {"encoder_layers": 2, "encoder_embed_dim": 64, "encoder_ffn_embed_dim": 256, "encoder_attention_heads": 4,
            "token_dropout": True, "arch": "esm2"}


def test_published_esm2_layout_pickles_exactly_the_documented_globals_and_loads(tmp_path: Path) -> None:
    published = _published_esm(tmp_path, argparse.Namespace(**_cfg()))
    assert pickled_globals(published) == ESM2_3B_GLOBALS
    plain = _published_esm(tmp_path, _cfg(), name="esm2_plain.pt")  # same tensors, cfg without any class
    assert pickled_globals(plain) == ESM2_3B_GLOBALS - {"argparse.Namespace"}
    assert check_esm(str(published))[1] == 64
    tokens = tokenize_proteins(["a", "b"], ["MKVLAAGITW", "MSTNPKPQRKTKRNTNRRPQDVKFPGG"])
    a = load_embedder("protein", str(published), device="cpu", precision="fp32").embed_batch(tokens)
    b = load_embedder("protein", str(plain), device="cpu", precision="fp32").embed_batch(tokens)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("intruder", [fractions.Fraction(1, 3), np.float64(0.5)], ids=["fractions", "numpy-scalar"])
def test_any_other_global_is_refused_by_name(tmp_path: Path, intruder: object) -> None:
    path = _published_esm(tmp_path, argparse.Namespace(**_cfg()), extra_state={"best": intruder})
    extra = pickled_globals(path) - ESM2_3B_GLOBALS
    assert extra
    with pytest.raises(ModelError, match="refused to load ESM-2 checkpoint: it references") as err:
        load_embedder("protein", str(path), device="cpu")
    assert any(name in str(err.value) for name in extra)


# -- DNABERT-S: pytorch_model.bin saved from a masked-LM wrapper ---------------------------------------------------


def _mlm_folder(tmp_path: Path, extra: dict[str, torch.Tensor] | None = None) -> Path:
    """The reference DNABERT-S with ``bert.``-prefixed keys and a BertForMaskedLM head, as ``torch.save`` of a
    ``state_dict()`` (an ``OrderedDict`` carrying ``_metadata``) in ``pytorch_model.bin``."""
    folder = tmp_path / "dnabert_mlm"
    shutil.copytree(DNABERT_DIR, folder)
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    out = collections.OrderedDict((f"bert.{k}", v) for k, v in state.items() if not k.startswith("pooler."))
    width, vocab = state["embeddings.word_embeddings.weight"].shape[1], state["embeddings.word_embeddings.weight"].shape[0]
    out.update({
        "cls.predictions.bias": torch.zeros(vocab),
        "cls.predictions.transform.dense.weight": torch.zeros(width, width),
        "cls.predictions.transform.dense.bias": torch.zeros(width),
        "cls.predictions.transform.LayerNorm.weight": torch.ones(width),
        "cls.predictions.transform.LayerNorm.bias": torch.zeros(width),
        "cls.predictions.decoder.weight": torch.zeros(vocab, width),
        "cls.predictions.decoder.bias": torch.zeros(vocab),
    })
    out.update(extra or {})
    out._metadata = collections.OrderedDict({"": {"version": 1}, "bert": {"version": 1}})  # type: ignore[attr-defined]
    torch.save(out, folder / "pytorch_model.bin")
    return folder


def test_bert_prefix_and_mlm_head_load_with_the_documented_globals(tmp_path: Path) -> None:
    folder = _mlm_folder(tmp_path)
    assert pickled_globals(folder / "pytorch_model.bin") == HF_BIN_GLOBALS
    embedder = load_embedder("dna", str(folder), device="cpu", precision="fp32")
    ids, tokens = embedder.read_and_tokenize(expected(300) / "identified_nucleotide.fa")
    out = np.zeros((len(ids), embedder.dim), dtype=np.float32)
    for rows, values in embedder.embed_tokens(tokens, 2048):
        out[rows] = values
    assert np.abs(out - golden("dnabert", 300)[1]).max() <= 1e-4


@pytest.mark.parametrize(
    "extra, named",
    [
        ({"lm_head.decoder.weight": torch.zeros(3)}, "lm_head.decoder.weight"),
        ({"bert.encoder.layer.0.attention.self.rotary.weight": torch.zeros(3)}, "bert.encoder.layer.0.attention.self.rotary.weight"),
        ({"embeddings.LayerNorm.bias": torch.zeros(64)}, "embeddings.LayerNorm.bias"),  # both with and without bert.
    ],
    ids=["other-head", "unknown-encoder-key", "prefixed-and-bare"],
)
def test_keys_that_do_not_map_are_refused_by_their_file_names(tmp_path: Path, extra: dict, named: str) -> None:
    folder = _mlm_folder(tmp_path, extra)
    with pytest.raises(ModelError) as err:
        load_embedder("dna", str(folder), device="cpu", precision="fp32")
    assert named in str(err.value) and "pytorch_model.bin" in str(err.value)


def test_refusal_never_passes_on_torchs_advice_to_turn_safety_off(tmp_path, monkeypatch) -> None:
    """torch's refusal text offers ``weights_only=False``; our one line says what is wrong and nothing of that."""
    path = tmp_path / "odd.pt"
    path.write_bytes(b"not used")

    def refuse(*_args, **_kwargs):
        raise pickle.UnpicklingError(
            "Weights only load failed. This file can still be loaded, to do so you have two options.\n"
            "(1) Re-running `torch.load` with `weights_only` set to `False` will likely succeed")

    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(ModelError) as info:
        load_esm_pickle(path)
    message = str(info.value)
    assert "weights_only" not in message and "still be loaded" not in message
    assert str(path) in message and "refused" in message
