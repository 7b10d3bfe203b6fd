"""Peer oracles: our ESM-2 against fair-esm's own ``ESM2`` and against transformers' ``EsmModel``.

A medium random model (6 layers, 320 wide, 20 heads: the ESM-2 8M shape with more depth) is built with fair-esm,
saved in fair-esm's checkpoint layout and loaded by OUR loader; the same weights are mapped into transformers'
``EsmModel``. Proteins are realistic (amino-acid background frequencies, fixed seed) and include ones longer than
1024 residues, which the original feeds whole and averages over residues 1..1024.

DNABERT-S has no installable peer without remote code: transformers has no MosaicBERT class, and the only
implementation is the model's own ``bert_layers.py``, which we never execute. Its peer is the golden data in
tests/data/reference, computed by that very remote code (tests/test_dnabert.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

esm = pytest.importorskip("esm", reason="fair-esm is a test extra: pip install -e '.[test]'")
transformers = pytest.importorskip("transformers", reason="transformers is a test extra: pip install -e '.[test]'")

from virnucpro.embed import load_embedder  # noqa: E402
from virnucpro.models.esm import MAX_RESIDUES, tokenize_proteins  # noqa: E402

LAYERS, DIM, HEADS = 6, 320, 20
#: UniProt amino-acid background frequencies (percent), rounded.
_AA = "ARNDCQEGHILKMFPSTWYV"
_FREQ = np.array([8.3, 5.5, 4.1, 5.5, 1.4, 3.9, 6.7, 7.1, 2.3, 5.9, 9.7, 5.8, 2.4, 3.9, 4.7, 6.6, 5.3, 1.1, 2.9, 6.9])
LENGTHS = (37, 166, 1024, 1090)


def _proteins() -> list[str]:
    rng = np.random.default_rng(20241)
    p = _FREQ / _FREQ.sum()
    return ["M" + "".join(rng.choice(list(_AA), n - 1, p=p)) for n in LENGTHS]


@pytest.fixture(scope="module")
def fair_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """fair-esm ESM2 with random weights (every parameter perturbed), and its checkpoint in fair-esm's layout."""
    torch.manual_seed(7)
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    model = esm.model.esm2.ESM2(num_layers=LAYERS, embed_dim=DIM, attention_heads=HEADS, alphabet=alphabet, token_dropout=True)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn_like(param) * 0.05
            param.copy_(1.0 + noise if name.endswith("layer_norm.weight") or "layer_norm_after.weight" in name else param + noise)
    model.eval()
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("lm_head."):
            state[f"encoder.{key}"] = value
        elif key.startswith("contact_head."):
            state[key] = value
        else:
            state[f"encoder.sentence_encoder.{key}"] = value
    cfg = {"model": {"encoder_layers": LAYERS, "encoder_embed_dim": DIM, "encoder_ffn_embed_dim": 4 * DIM,
                     "encoder_attention_heads": HEADS, "token_dropout": True}}
    path = tmp_path_factory.mktemp("peer") / "esm2_t6_medium.pt"
    torch.save({"model": state, "cfg": cfg}, path)
    return model, path


def _fair_means(model: torch.nn.Module, proteins: list[str]) -> np.ndarray:
    """What the original's extract_esm computes: whole protein in, mean over residues 1..min(1024, len)."""
    converter = esm.data.Alphabet.from_architecture("ESM-1b").get_batch_converter()
    rows = []
    with torch.no_grad():
        for i, seq in enumerate(proteins):  # one at a time: the oracle never sees padding
            _, _, toks = converter([(f"p{i}", seq)])
            rep = model(toks, repr_layers=[LAYERS])["representations"][LAYERS]
            rows.append(rep[0, 1 : min(MAX_RESIDUES, len(seq)) + 1].mean(0).numpy())
    return np.stack(rows)


def _hf_model(model: torch.nn.Module) -> torch.nn.Module:
    """transformers' EsmModel with the fair-esm weights (the names follow transformers' own conversion script)."""
    config = transformers.EsmConfig(
        vocab_size=33, mask_token_id=32, pad_token_id=1, hidden_size=DIM, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, intermediate_size=4 * DIM, position_embedding_type="rotary", token_dropout=True,
        emb_layer_norm_before=False, layer_norm_eps=1e-5, max_position_embeddings=4096,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    hf = transformers.EsmModel(config, add_pooling_layer=False).eval()
    src = model.state_dict()
    mapped = {"embeddings.word_embeddings.weight": src["embed_tokens.weight"]}
    for n in range(LAYERS):
        s, d = f"layers.{n}.", f"encoder.layer.{n}."
        for ours, theirs in (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value")):
            for p in ("weight", "bias"):
                mapped[f"{d}attention.self.{theirs}.{p}"] = src[f"{s}self_attn.{ours}.{p}"]
        for p in ("weight", "bias"):
            mapped[f"{d}attention.output.dense.{p}"] = src[f"{s}self_attn.out_proj.{p}"]
            mapped[f"{d}attention.LayerNorm.{p}"] = src[f"{s}self_attn_layer_norm.{p}"]
            mapped[f"{d}intermediate.dense.{p}"] = src[f"{s}fc1.{p}"]
            mapped[f"{d}output.dense.{p}"] = src[f"{s}fc2.{p}"]
            mapped[f"{d}LayerNorm.{p}"] = src[f"{s}final_layer_norm.{p}"]
    for p in ("weight", "bias"):
        mapped[f"encoder.emb_layer_norm_after.{p}"] = src[f"emb_layer_norm_after.{p}"]
    missing, unexpected = hf.load_state_dict(mapped, strict=False)
    assert not unexpected and all("inv_freq" in k or "contact_head" in k for k in missing), (missing, unexpected)
    return hf


@pytest.fixture(scope="module")
def oracle(fair_model) -> np.ndarray:
    return _fair_means(fair_model[0], _proteins())


def test_ours_matches_fair_esm(fair_model, oracle: np.ndarray) -> None:
    ours = load_embedder("protein", str(fair_model[1]), device="cpu", precision="fp32")
    tokens = tokenize_proteins([f"p{i}" for i in range(len(LENGTHS))], _proteins())
    assert [len(t) - 2 for t in tokens] == list(LENGTHS)  # nothing truncated
    batched = ours.embed_batch(tokens)  # one padded batch: short proteins padded to 1092 tokens (reference path:
    assert np.abs(batched - oracle).max() <= 1e-4  # tests/test_esm.py, same model code, golden data)


def test_transformers_esm_agrees(fair_model, oracle: np.ndarray) -> None:
    hf = _hf_model(fair_model[0])
    proteins = _proteins()
    rows = []
    with torch.no_grad():
        for seq in proteins:
            ids = torch.from_numpy(tokenize_proteins(["x"], [seq])[0].astype(np.int64))[None]
            hidden = hf(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            rows.append(hidden[0, 1 : min(MAX_RESIDUES, len(seq)) + 1].mean(0).numpy())
    # the two peers agree with each other, so ours (== fair-esm within 1e-4, above) agrees with transformers too
    assert np.abs(np.stack(rows) - oracle).max() <= 1e-4


def test_truncating_first_would_differ(fair_model, oracle: np.ndarray) -> None:
    """The long-protein rule matters at this size: cutting the input to 1024 residues changes the mean."""
    ours = load_embedder("protein", str(fair_model[1]), device="cpu", precision="fp32")
    long = [i for i, n in enumerate(LENGTHS) if n > MAX_RESIDUES]
    cut = ours.embed_batch(tokenize_proteins(["x"] * len(long), [_proteins()[i][:MAX_RESIDUES] for i in long]))
    assert np.abs(cut - oracle[long]).max() > 1e-2
