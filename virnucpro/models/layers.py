"""Model-side helpers both encoder architectures share: the attention paths, strict state-dict checking,
meta-device materialisation and the :class:`LoadedEncoder` hand-over to the engine.

They live under ``models/`` so the architectures never import the embedding engine (data flows one way: the engine
uses models, models know nothing of it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from virnucpro.errors import ModelError

ATTENTION_MODES = ("sdpa", "reference")




def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float, mode: str) -> torch.Tensor:
    """Scaled dot-product attention over ``[batch, heads, length, head_dim]``.

    ``mask`` is either boolean (True = key may be attended) or an additive float bias (ALiBi + padding); it must
    broadcast to ``[batch, heads, length, length]``. ``sdpa`` uses PyTorch's fused kernels; ``reference`` spells the
    matmul-softmax out (softmax in float32, as fair-esm does) and is the oracle the fused path is tested against.
    """
    if mode == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    if mode != "reference":
        raise ValueError(f"attention must be one of {ATTENTION_MODES}, not {mode!r}")
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, float("-inf"))
    else:
        scores = scores + mask
    probs = torch.softmax(scores.float(), dim=-1).to(v.dtype)
    return torch.matmul(probs, v)


def check_state_dict(
    expected: Mapping[str, tuple[int, ...]], found: Mapping[str, torch.Tensor], where: str
) -> None:
    """Refuse weights that do not map one-to-one onto the architecture, naming the offending keys.

    Shape mismatches are reported as a disagreement between the configuration (which fixed ``expected``) and the
    weights, because that is what they almost always are.
    """
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    misshaped = [
        f"{key} {tuple(found[key].shape)} (configuration implies {expected[key]})"
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


def materialize(build: Callable[[], nn.Module], state: Mapping[str, torch.Tensor], device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Build on the meta device and adopt the (memory-mapped) checkpoint tensors, then move/cast once.

    A 3B model built the ordinary way would be initialised randomly, then overwritten: two to three times its size
    in host memory. Here the only copy is the final one on ``device`` in ``dtype``.
    """
    with torch.device("meta"):
        module = build()
    module.load_state_dict(dict(state), strict=True, assign=True)
    module = module.to(device=device, dtype=dtype)
    return module.eval().requires_grad_(False)


@dataclass
class LoadedEncoder:
    """What an architecture module hands to :class:`Embedder`.

    ``module(tokens, mask)`` maps ``[batch, length]`` token ids and a boolean mask (True = real token) to the last
    hidden state ``[batch, length, dim]``; ``tokenize(ids, sequences)`` returns one int array per sequence (special
    tokens included); the pooled mean skips ``pool_skip[0]`` leading and ``pool_skip[1]`` trailing tokens.
    """

    name: str
    checksum: str
    dim: int
    module: nn.Module
    tokenize: Callable[[Sequence[str], Sequence[str]], list[np.ndarray]]
    pad_id: int
    pool_skip: tuple[int, int]
    info: dict[str, Any] = field(default_factory=dict)
