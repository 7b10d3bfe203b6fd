"""Model-side helpers both encoder architectures share: the attention paths, the precision-aware linear layer, strict state-dict checking, meta-device materialisation, pooling and the
:class:`LoadedEncoder` hand-over to the engine.

They live under ``models/`` so the architectures never import the embedding engine (data flows one way: the engine
uses models, models know nothing of it).

Attention modes (both tested against the original's golden embeddings):

* ``sdpa`` (default): padded batch through PyTorch's fused ``scaled_dot_product_attention``. When the caller says a
  batch has no padding (``padded=False``, known on the host) the mask is dropped (ESM-2: no mask at all, so
  FlashAttention can run on CUDA; DNABERT-S: only a view of the cached ``[H, L, L]`` ALiBi table).
* ``reference``: matmul-softmax spelled out (softmax in float32, as fair-esm does): the oracle.

A third, ``packed`` path (padding removed, attention per sequence) was measured slower than ``sdpa`` on this
project's CPU for both models with length-sorted batches, which carry almost no padding, and was removed
(docs/precision.md, "Attention paths").
"""

from __future__ import annotations

import os

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from virnucpro.device import Precision, as_precision
from virnucpro.errors import ModelError

ATTENTION_MODES = ("sdpa", "reference")


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, scale: float, mode: str) -> torch.Tensor:
    """Scaled dot-product attention over ``[batch, heads, length, head_dim]``.

    ``mask`` is ``None`` (every key real), boolean (True = key may be attended) or an additive float bias (ALiBi +
    padding); it must broadcast to ``[batch, heads, length, length]``. ``sdpa`` uses PyTorch's fused
    kernels; ``reference`` spells the matmul-softmax out (softmax in float32, as fair-esm does) and is the oracle the
    fused path is tested against.
    """
    if mode == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    if mode != "reference":
        raise ValueError(f"attention must be one of {ATTENTION_MODES}, not {mode!r}")
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if mask is not None and mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, float("-inf"))
    elif mask is not None:
        scores = scores + mask
    probs = torch.softmax(scores.float(), dim=-1).to(v.dtype)
    return torch.matmul(probs, v)


class Linear(nn.Linear):
    """``nn.Linear`` that computes in its weight's dtype and hands back that dtype.

    In the mixed precision mode (``bf16-mixed``) the weights are bf16 while the residual stream, LayerNorm and pooling
    stay float32: the input is cast down here and the caller's residual addition promotes the result back to float32.
    In every other mode input and weight already share a dtype and the cast is a no-op.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(self.weight.dtype), self.weight, self.bias)


def check_state_dict(
    expected: Mapping[str, tuple[int, ...]], found: Mapping[str, torch.Tensor], where: str,
    file_names: Mapping[str, str] | None = None,
) -> None:
    """Refuse weights that do not map one-to-one onto the architecture, naming the offending keys (as the file spells
    them when ``file_names`` maps architecture names back to the file's keys).

    Shape mismatches are reported as a disagreement between the configuration (which fixed ``expected``) and the
    weights, because that is what they almost always are.
    """
    names = file_names or {}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(names.get(key, key) for key in set(found) - set(expected))
    misshaped = [
        f"{names.get(key, key)} {tuple(found[key].shape)} (configuration implies {expected[key]})"
        for key in sorted(set(expected) & set(found))
        if tuple(found[key].shape) != tuple(expected[key])
    ]
    problems = []
    if missing:
        problems.append(f"missing {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected {_few(unexpected)}")
    if misshaped:
        problems.append(f"configuration and weights disagree: {_few(misshaped)}")
    if problems:
        raise ModelError(f"{where}: weights do not match the architecture: {'; '.join(problems)}")


def _few(items: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def materialize(
    build: Callable[[], nn.Module],
    state: Mapping[str, torch.Tensor],
    device: torch.device,
    precision: Precision | torch.dtype,
) -> nn.Module:
    """Build on the meta device and adopt the (memory-mapped) checkpoint tensors, then move/cast once.

    A 3B model built the ordinary way would be initialised randomly, then overwritten: two to three times its size
    in host memory. Here the only copy is the final one on ``device``: in ``precision.dtype``, with the weights of
    :class:`Linear` layers in ``precision.matmul`` (they differ only in the mixed mode).
    """
    with torch.device("meta"):
        module = build()
    module.load_state_dict(dict(state), strict=True, assign=True)
    return apply_precision(module, device, precision)


def apply_precision(module: nn.Module, device: torch.device, precision: Precision | torch.dtype) -> nn.Module:
    """Move ``module`` to ``device`` in the storage dtype, cast linear weights to the matmul dtype, set TF32 flags."""
    precision = as_precision(precision)
    module = module.to(device=device, dtype=precision.dtype)
    if precision.matmul != precision.dtype:
        for sub in module.modules():
            if isinstance(sub, nn.Linear):
                sub.to(precision.matmul)
    precision.configure(device)
    return module.eval().requires_grad_(False)


#: ATEN_CPU_CAPABILITY → inductor's ``cpp.simdlen`` (1 = scalar code).
_SIMD_BITS = {"default": 1, "avx2": 256, "avx512": 512}


def compile_layers(layers: nn.ModuleList) -> None:
    """``torch.compile`` each transformer layer in place (dynamic shapes: batches vary in length).

    Per layer rather than the whole model, so the attention mode stays switchable and one compiled graph serves every
    layer. Off by default: on this project's CPU it was not shown to pay (docs/precision.md, "Attention paths"), and no
    GPU measurement exists yet to turn it on for CUDA.
    """
    capability = os.environ.get("ATEN_CPU_CAPABILITY", "").lower()
    if capability in _SIMD_BITS:
        # Inductor (torch 2.13) sizes its CPU vector code by the CPU it detects, while the at::vec headers it builds
        # against follow ATEN_CPU_CAPABILITY: pinned to avx2 on an AVX-512 CPU the two disagree and the compiled
        # layers return wrong numbers (measured: 3.7 off the golden embeddings); pinned to default the code does not
        # build. Make inductor use the width ATen was told to use.
        import torch._inductor.config as inductor_config

        inductor_config.cpp.simdlen = _SIMD_BITS[capability]
    for layer in layers:
        layer.compile(dynamic=True)


def pooled_mean(hidden: torch.Tensor, mask: torch.Tensor, skip: tuple[int, int], limit: int | None = None) -> torch.Tensor:
    """Mean over each row's real tokens minus ``skip`` (leading, trailing), at most ``limit`` of them, in float32.

    ``limit`` reproduces fair-esm's ``t[i, 1 : truncate_len + 1].mean(0)``: the whole protein goes through the model,
    only its first ``limit`` residues are averaged.
    """
    lengths = mask.sum(dim=1)
    positions = torch.arange(mask.shape[1], device=mask.device)[None, :]
    end = lengths - skip[1]
    if limit is not None:
        end = end.clamp_max(skip[0] + limit)
    keep = (positions >= skip[0]) & (positions < end[:, None])
    weights = keep.to(torch.float32)
    total = torch.einsum("bl,bld->bd", weights, hidden.float())
    return total / weights.sum(dim=1, keepdim=True).clamp_min(1.0)


@dataclass
class LoadedEncoder:
    """What an architecture module hands to the embedding engine.

    ``module(tokens, mask)`` maps ``[batch, length]`` token ids and a boolean mask (True = real token, right-padded)
    to the last hidden state ``[batch, length, dim]`` (the attention path is the module's ``attention`` attribute;
    the caller does not need to know it); ``tokenize(ids, sequences)`` returns one int array per sequence (special
    tokens included); :meth:`pool` averages the hidden states as the original does: ``pool_skip[0]`` leading and
    ``pool_skip[1]`` trailing tokens are skipped, and at most ``pool_limit`` tokens are averaged (ESM-2: 1024).
    """

    name: str
    checksum: str
    dim: int
    module: nn.Module
    tokenize: Callable[[Sequence[str], Sequence[str]], list[np.ndarray]]
    pad_id: int
    pool_skip: tuple[int, int]
    info: dict[str, Any] = field(default_factory=dict)
    pool_limit: int | None = None

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-sequence mean embedding ``[batch, dim]`` in float32."""
        return pooled_mean(hidden, mask, self.pool_skip, self.pool_limit)
