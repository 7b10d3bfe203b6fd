"""ESM-2 re-implementation against the ORIGINAL's golden embeddings, long proteins, and the safe, strict loader."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ESM_PT, cosine_rows, expected, golden_in_order
from virnucpro.embed import load_embedder
from virnucpro.errors import ModelError
from virnucpro.h5io import read_matrix
from virnucpro.models import hub
from virnucpro.models.esm import ALPHABET, MASK, MAX_RESIDUES, tokenize_proteins
from virnucpro.models.checkpoint import load_esm_pickle


@pytest.fixture(scope="module")
def esm():
    return load_embedder("protein", str(ESM_PT), device="cpu", precision="fp32")


def _embed(embedder, chunk: int, tmp_path: Path, tokens_per_batch: int | None) -> tuple[list[str], np.ndarray]:
    out = tmp_path / f"prot{chunk}-{tokens_per_batch}.h5"
    embedder.embed_fasta(expected(chunk) / "identified_protein.faa", out, tokens_per_batch=tokens_per_batch, progress=False)
    table = read_matrix(out)
    return table.ids, table.matrix


def test_alphabet_is_esm1b() -> None:
    assert len(ALPHABET) == 33 and ALPHABET[:4] == ("<cls>", "<pad>", "<eos>", "<unk>")
    assert ALPHABET[4] == "L" and ALPHABET[31] == "<null_1>" and MASK == 32
    assert tokenize_proteins(["p"], ["MKZ*"])[0].tolist() == [0, 20, 15, 27, 3, 2]  # '*' is <unk>


@pytest.mark.parametrize("attention", ["sdpa", "reference"])
@pytest.mark.parametrize("chunk", [300, 500])
@pytest.mark.parametrize("tokens_per_batch", [1, 400, 1_000_000])
def test_matches_original(esm, tmp_path: Path, chunk: int, attention: str, tokens_per_batch: int) -> None:
    esm.attention = attention
    ids, matrix = _embed(esm, chunk, tmp_path, tokens_per_batch)
    file_ids = [line[1:].strip() for line in (expected(chunk) / "identified_protein.faa").read_text().splitlines() if line.startswith(">")]
    assert ids == file_ids  # input order, although the golden file stores fair-esm's batch order
    assert np.abs(matrix - golden_in_order("esm", chunk, ids)).max() <= 1e-4
    esm.attention = "sdpa"


def test_bf16_close_to_fp32(tmp_path: Path) -> None:
    bf16 = load_embedder("protein", str(ESM_PT), device="cpu", precision="bf16")
    ids, matrix = _embed(bf16, 500, tmp_path, 4096)
    assert cosine_rows(matrix, golden_in_order("esm", 500, ids)).min() >= 0.999


def test_padding_does_not_change_result(esm) -> None:
    _, tokens = esm.read_and_tokenize(expected(300) / "identified_protein.faa")
    few = tokens[:6]
    alone = np.stack([esm.embed_batch([t])[0] for t in few])
    padded = esm.embed_batch(few, pad_to=max(len(t) for t in few) + 50)
    assert np.abs(alone - padded).max() <= 1e-5


def test_long_protein_fed_whole_mean_over_first_1024(esm, caplog: pytest.LogCaptureFixture) -> None:
    """The original's batch converter does not truncate: the model sees every residue, the mean covers 1..1024."""
    rng = np.random.default_rng(0)
    seq = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), MAX_RESIDUES + 80))
    with caplog.at_level("WARNING", logger="virnucpro"):
        long_tokens, short_tokens = tokenize_proteins(["long", "short"], [seq, seq[:MAX_RESIDUES]])
    assert "long" in caplog.text and "embedded whole" in caplog.text
    assert len(long_tokens) == MAX_RESIDUES + 80 + 2 and long_tokens[-1] == 2
    whole = esm.embed_batch([long_tokens])
    module, mask = esm.encoder.module, torch.ones(1, len(long_tokens), dtype=torch.bool)
    with torch.inference_mode():
        hidden = module(torch.from_numpy(long_tokens[None].astype(np.int64)), mask)
    assert np.abs(whole - hidden[0, 1 : MAX_RESIDUES + 1].mean(0).numpy()).max() <= 1e-5  # positions 1..1024 only
    assert np.abs(whole - esm.embed_batch([short_tokens])).max() > 1e-3  # the tail shaped the first 1024 residues
    for mode in ("sdpa", "reference"):  # padded next to a short protein, every attention path
        esm.attention = mode
        batch = esm.embed_batch([long_tokens, short_tokens[:40]])
        assert np.abs(batch[0] - whole[0]).max() <= 1e-5
    esm.attention = "sdpa"


# -- loader -----------------------------------------------------------------------------------------------------------


def _checkpoint() -> dict:
    return load_esm_pickle(ESM_PT)


def test_wrong_layout_is_refused(tmp_path: Path) -> None:
    ck = _checkpoint()
    bad = tmp_path / "nocfg.pt"
    torch.save({"model": ck["model"]}, bad)
    with pytest.raises(ModelError, match="cfg"):
        load_embedder("protein", str(bad), device="cpu")
    missing = tmp_path / "missing.pt"
    key = "encoder.sentence_encoder.layers.1.fc2.weight"
    torch.save({"model": {k: v for k, v in ck["model"].items() if k != key}, "cfg": {"model": _plain_cfg()}}, missing)
    with pytest.raises(ModelError, match=r"missing.*layers\.1\.fc2\.weight"):
        load_embedder("protein", str(missing), device="cpu")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError):
        load_embedder("protein", str(junk), device="cpu")


def _plain_cfg() -> dict:
    return {"encoder_layers": 2, "encoder_embed_dim": 64, "encoder_ffn_embed_dim": 256, "encoder_attention_heads": 4, "token_dropout": True}


def test_plain_and_real_omegaconf_cfg_load(tmp_path: Path) -> None:
    """Checkpoints whose cfg is a plain dict, or a whole omegaconf DictConfig (typed nodes), load the same."""
    ck = _checkpoint()
    plain = tmp_path / "plain.pt"
    torch.save({"model": ck["model"], "cfg": {"model": _plain_cfg()}}, plain)
    a = load_embedder("protein", str(plain), device="cpu")
    omegaconf = pytest.importorskip("omegaconf")
    cfg = omegaconf.OmegaConf.create({"model": {**_plain_cfg(), "_name": "esm2", "dropout": 0.0}, "common": {"seed": 1}})
    wrapped = tmp_path / "omega.pt"
    torch.save({"model": ck["model"], "cfg": cfg}, wrapped)
    b = load_embedder("protein", str(wrapped), device="cpu")
    tokens = tokenize_proteins(["x"], ["MKVLAAGIT"])
    assert np.array_equal(a.embed_batch(tokens), b.embed_batch(tokens))


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    ck = _checkpoint()
    torch.save({"model": ck["model"], "cfg": {"model": _plain_cfg()}, "extra": _Evil(marker)}, evil)
    with pytest.raises(ModelError, match="refused to load"):
        load_embedder("protein", str(evil), device="cpu")
    assert not marker.exists()


def test_fair_esm_name_resolves_to_torch_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    calls: list[str] = []

    def fake_fetch(url: str, dest: Path, **_: object) -> Path:
        calls.append(url)
        if url.endswith("-contact-regression.pt"):
            raise ModelError("offline")  # missing regression file must not matter
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ESM_PT, dest)
        return dest

    monkeypatch.setattr(hub, "fetch_url", fake_fetch)
    embedder = load_embedder("protein", "esm2_t2_8M_UR50D", device="cpu")
    assert (tmp_path / "hub" / "checkpoints" / "esm2_t2_8M_UR50D.pt").is_file()
    assert calls[0] == "https://dl.fbaipublicfiles.com/fair-esm/models/esm2_t2_8M_UR50D.pt"
    assert embedder.dim == 64
    calls.clear()
    load_embedder("protein", "esm2_t2_8M_UR50D", device="cpu")  # cached: no model download
    assert not any(u.endswith("esm2_t2_8M_UR50D.pt") for u in calls)
    with pytest.raises(ModelError, match="not a fair-esm model name"):
        load_embedder("protein", "no_such_model", device="cpu")
