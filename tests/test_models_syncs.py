"""A forward pass never makes the host wait for the device.

On CUDA, reading a device value on the host (``bool(t)``, ``.item()``, ``.tolist()``, ``nonzero``), or building a tensor
from host data (``torch.tensor(list, device=cuda)``), blocks the CPU until the GPU has caught up, so the engine's
"batches in flight" collapse to one. CPU tensors dispatch the same aten operators, so a ``TorchDispatchMode`` that
refuses them proves the property without a GPU. A second pass on the ``meta`` device catches host reads that do not
dispatch on CPU (``.tolist()`` reads CPU memory directly; a meta tensor has none to read).
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from virnucpro.models.dnabert import DnaBert, DnaBertConfig
from virnucpro.models.esm import Esm2, EsmConfig
from virnucpro.models.layers import ATTENTION_MODES, pooled_mean

#: operators that read a device value on the host, have a data-dependent output shape (the size must be read), or
#: copy host data onto the device
SYNCING = {
    "aten._local_scalar_dense", "aten.is_nonzero", "aten.item", "aten.equal", "aten.allclose",
    "aten.nonzero", "aten.nonzero_numpy", "aten.masked_select", "aten.unique", "aten._unique", "aten._unique2",
    "aten.unique_consecutive", "aten.unique_dim", "aten.bincount", "aten.repeat_interleave", "aten.lift_fresh",
    "aten.lift_fresh_copy", "aten._assert_async",
}


class NoSyncMode(TorchDispatchMode):
    """Raise on any operator in :data:`SYNCING`, and on copies between devices."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        if name in SYNCING:
            raise AssertionError(f"host sync in forward: {func}")
        if name in ("aten._to_copy", "aten.copy_"):
            devices = {a.device for a in args if isinstance(a, torch.Tensor)}
            if (kwargs or {}).get("device") is not None:
                devices.add(torch.device(kwargs["device"]))
            if len(devices) > 1:
                raise AssertionError(f"device copy in forward: {func} {devices}")
        return func(*args, **(kwargs or {}))


def test_the_mode_catches_the_old_patterns() -> None:
    """The checks can fail: ``bool(mask.all())`` and a slopes tensor built from a list are caught."""
    mask = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(AssertionError, match="host sync"), NoSyncMode():
        bool(mask.all())
    with pytest.raises(AssertionError, match="host sync"), NoSyncMode():
        torch.tensor([0.5, 0.25])
    with pytest.raises(AssertionError, match="host sync"), NoSyncMode():
        mask.reshape(-1).nonzero()


def _dna(device: str = "cpu") -> tuple[torch.nn.Module, int]:
    config = DnaBertConfig(vocab_size=64, hidden_size=48, num_hidden_layers=2, num_attention_heads=12,
                           intermediate_size=64, type_vocab_size=2, layer_norm_eps=1e-12)
    with torch.device(device):
        return DnaBert(config).eval().requires_grad_(False), 64


def _esm(device: str = "cpu") -> tuple[torch.nn.Module, int]:
    config = EsmConfig(layers=2, embed_dim=32, ffn_dim=64, heads=4, token_dropout=True)
    with torch.device(device):
        module = Esm2(config).eval().requires_grad_(False)
    if device != "meta":
        module.fuse()
    return module, 33


def _batch(vocab: int, padded: bool, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, vocab, (3, 11), generator=generator)
    mask = torch.ones(3, 11, dtype=torch.bool)
    if padded:
        mask[1, 7:] = False
        mask[2, 4:] = False
    return ids.to(device), mask.to(device)




@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("mode", ATTENTION_MODES)
@pytest.mark.parametrize("build", [_dna, _esm], ids=["dnabert", "esm"])
def test_forward_and_pooling_make_no_host_sync(build, mode: str, padded: bool) -> None:
    module, vocab = build()
    module.attention = mode
    ids, mask = _batch(vocab, padded)
    with torch.inference_mode():
        module(ids, mask, padded=padded)  # first call: builds what is cached (e.g. DNABERT-S's ALiBi table)
        with NoSyncMode():
            hidden = module(ids, mask, padded=padded)
            pooled_mean(hidden, mask, (1, 1), 1024)
    assert hidden.shape == (3, 11, module.config.embed_dim if build is _esm else 48)


@pytest.mark.parametrize("mode", ATTENTION_MODES)
@pytest.mark.parametrize("build", [_dna, _esm], ids=["dnabert", "esm"])
def test_forward_runs_on_meta_tensors(build, mode: str) -> None:
    """Every step of the forward, cache building included, works without reading any value (meta has none)."""
    module, vocab = build("meta")
    module.attention = mode
    ids, mask = _batch(vocab, True, "meta")
    with torch.inference_mode(), NoSyncMode():
        hidden = module(ids, mask)
        pooled_mean(hidden, mask, (0, 0))
    assert hidden.device.type == "meta"


def test_unpadded_batch_reuses_the_cached_alibi_table() -> None:
    """No padding: the bias is a view of one table per (device, dtype), built once and shared by every batch."""
    module, vocab = _dna()
    ids, mask = _batch(vocab, False)
    first = module.attention_bias(mask, torch.float32, padded=False)
    second = module.attention_bias(mask[:, :5], torch.float32, padded=False)
    assert first.shape == (1, 12, 11, 11) and second.shape == (1, 12, 5, 5)
    assert first.untyped_storage().data_ptr() == second.untyped_storage().data_ptr()
    assert len(module._alibi_tables) == 1


def test_attention_bias_benchmark_runs_and_counts_the_bias(tmp_path) -> None:
    """benchmarks/attention_bias.py (docs/benchmarks.md): a small run writes its JSON; unpadded batches allocate no
    bias-shaped tensor, padded ones exactly one ``[B, 12, L, L]`` float32 bias (sizes, not times, are asserted)."""
    import json
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "attention_bias.py"
    out = tmp_path / "bias.json"
    argv = sys.argv
    sys.argv = [str(script), "--layers", "1", "--batch", "2", "--length", "16", "--repeats", "1", "--output", str(out)]
    try:
        with pytest.raises(SystemExit) as done:
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
    assert done.value.code == 0
    unpadded, padded = json.loads(out.read_text())["results"]
    assert unpadded["bias_sized_bytes_per_forward"] == 0
    assert padded["bias_sized_bytes_per_forward"] == 2 * 12 * 16 * 16 * 4
