"""ESM-2: a compact re-implementation of fair-esm's ``ESM2`` inference path, loading fair-esm ``.pt`` checkpoints safely.

What VirNucPro takes from ESM-2 is the last layer's representation (after ``emb_layer_norm_after``) averaged over
the residues, BOS/EOS excluded. The module mirrors ``esm/model/esm2.py``: token-dropout rescaling of the embeddings,
zeroed padding, pre-LayerNorm layers with rotary self-attention (queries scaled by head_dim^-0.5 before the
rotation), exact-GELU feed-forward. The masked-LM head and contact head are never built.

Checkpoints hold omegaconf objects in ``cfg``; they are read with ``weights_only=True`` and inert stand-ins for
exactly those classes (:mod:`virnucpro.models.checkpoint`), so a tampered file cannot run code. The state dict is
memory-mapped and adopted on the meta device, so a 3B checkpoint is never held twice in host memory.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from virnucpro.checksum import file_sha256
from virnucpro.device import Precision
from virnucpro.models.layers import (
    LoadedEncoder, Linear, attend, check_state_dict, compile_layers, materialize,
)
from virnucpro.errors import ModelError
from virnucpro.models import hub
from virnucpro.models.checkpoint import load_esm_pickle, plain, read_esm_safetensors

log = logging.getLogger("virnucpro")

#: fair-esm's ESM-1b alphabet (used by all ESM-2 models): specials, residues, padding to a multiple of 8, <mask>.
ALPHABET: tuple[str, ...] = (
    ("<cls>", "<pad>", "<eos>", "<unk>")
    + tuple("LAGVSERTIDPKQNFYMHWCXBUZO.-")
    + ("<null_1>", "<mask>")
)
CLS, PAD, EOS, UNK = 0, 1, 2, 3
MASK = ALPHABET.index("<mask>")
#: The original's ``truncation_seq_length``: only the first 1024 residues are AVERAGED; the model sees all of them.
MAX_RESIDUES = 1024
_TOKEN_DROPOUT_TRAIN_RATIO = 0.15 * 0.8
_PREFIX = "encoder.sentence_encoder."
_IGNORED = re.compile(r"^(encoder\.lm_head\.|contact_head\.|encoder\.contact_head\.)")
_FAIR_ESM_NAME = re.compile(r"esm2_t\d+_\d+[MB]_UR50D")

#: token id of each byte value (residue letters; anything else is <unk>, as fair-esm's alphabet lookup does)
_BYTE_TO_ID = np.full(256, UNK, dtype=np.int32)
for _index, _token in enumerate(ALPHABET):
    if len(_token) == 1:
        _BYTE_TO_ID[ord(_token)] = _index


@dataclass(frozen=True)
class EsmConfig:
    """The ``cfg['model']`` fields the architecture depends on."""

    layers: int
    embed_dim: int
    ffn_dim: int
    heads: int
    token_dropout: bool

    def expected_shapes(self, rotary_dim: int | None = None) -> dict[str, tuple[int, ...]]:
        """Weight names (without the ``encoder.sentence_encoder.`` prefix) and the shapes this configuration implies."""
        d, f = self.embed_dim, self.ffn_dim
        shapes: dict[str, tuple[int, ...]] = {
            "embed_tokens.weight": (len(ALPHABET), d),
            "emb_layer_norm_after.weight": (d,),
            "emb_layer_norm_after.bias": (d,),
        }
        for n in range(self.layers):
            p = f"layers.{n}."
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                shapes[f"{p}self_attn.{proj}.weight"] = (d, d)
                shapes[f"{p}self_attn.{proj}.bias"] = (d,)
            shapes[f"{p}self_attn.rot_emb.inv_freq"] = ((d // self.heads) // 2,)
            for norm in ("self_attn_layer_norm", "final_layer_norm"):
                shapes[f"{p}{norm}.weight"] = (d,)
                shapes[f"{p}{norm}.bias"] = (d,)
            shapes.update({f"{p}fc1.weight": (f, d), f"{p}fc1.bias": (f,), f"{p}fc2.weight": (d, f), f"{p}fc2.bias": (d,)})
        return shapes


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """fair-esm's rotation: halves (x1, x2) → (-x2, x1)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Rotary(nn.Module):
    """Rotary position embedding with the checkpoint's ``inv_freq``, tables computed in float32."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim)))

    def forward(self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate ``q``/``k`` (``[..., length, head_dim]``) at ``positions``."""
        freqs = positions.to(torch.float32)[:, None] * self.inv_freq.float()[None, :]
        table = torch.cat((freqs, freqs), dim=-1)
        cos, sin = table.cos().to(q.dtype), table.sin().to(q.dtype)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class SelfAttention(nn.Module):
    """Rotary multi-head self-attention. Loads fair-esm's separate q/k/v projections; :meth:`fuse` then replaces them
    by one ``qkv`` projection (one matmul instead of three) with fair-esm's query scaling folded into its weights."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.q_proj = Linear(dim, dim)
        self.k_proj = Linear(dim, dim)
        self.v_proj = Linear(dim, dim)
        self.out_proj = Linear(dim, dim)
        self.rot_emb = Rotary(self.head_dim)
        self.qkv: Linear | None = None
        self.q_scale = 1.0

    @torch.no_grad()
    def fuse(self) -> None:
        """Concatenate (q | k | v) into ``qkv`` and drop the separate projections.

        fair-esm's query scale head_dim^-0.5 is folded into the weights when it is a power of two (head_dim 16, 64,
        256: ESM-2 8M, 650M, 3B), so the product is bit-identical in every dtype; otherwise it stays a multiply.
        """
        scale = self.head_dim**-0.5
        self.q_scale = 1.0 if math.log2(scale).is_integer() else scale
        fold = scale / self.q_scale
        weight = torch.cat((self.q_proj.weight * fold, self.k_proj.weight, self.v_proj.weight))
        bias = torch.cat((self.q_proj.bias * fold, self.k_proj.bias, self.v_proj.bias))
        with torch.device("meta"):
            fused = Linear(weight.shape[1], weight.shape[0])
        fused.weight, fused.bias = nn.Parameter(weight, requires_grad=False), nn.Parameter(bias, requires_grad=False)
        self.qkv = fused
        del self.q_proj, self.k_proj, self.v_proj

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q (already scaled, as fair-esm scales q before the rotation), k, v as ``[..., heads, head_dim]``."""
        if self.qkv is not None:
            q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, self.head_dim)).unbind(-3)
            if self.q_scale != 1.0:
                q = q * self.q_scale
        else:
            q = (self.q_proj(x) * self.head_dim**-0.5).unflatten(-1, (self.heads, self.head_dim))
            k = self.k_proj(x).unflatten(-1, (self.heads, self.head_dim))
            v = self.v_proj(x).unflatten(-1, (self.heads, self.head_dim))
        return q, k, v

    def forward(self, x: torch.Tensor, batch: "Batch", mode: str) -> torch.Tensor:
        q, k, v = self._project(x)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, heads, L, head_dim]
        q, k = self.rot_emb(q, k, batch.positions)
        context = attend(q, k, v, batch.key_mask, 1.0, mode)
        return self.out_proj(context.transpose(1, 2).flatten(-2))


@dataclass
class Batch:
    """What every layer of one forward pass shares: token positions and the key mask (``None`` when no row is
    padded)."""

    positions: torch.Tensor
    key_mask: torch.Tensor | None = None


class Layer(nn.Module):
    """Pre-LayerNorm transformer layer (fair-esm ``TransformerLayer`` with rotary attention)."""

    def __init__(self, c: EsmConfig) -> None:
        super().__init__()
        self.self_attn = SelfAttention(c.embed_dim, c.heads)
        self.self_attn_layer_norm = nn.LayerNorm(c.embed_dim)
        self.fc1 = Linear(c.embed_dim, c.ffn_dim)
        self.fc2 = Linear(c.ffn_dim, c.embed_dim)
        self.final_layer_norm = nn.LayerNorm(c.embed_dim)

    def forward(self, x: torch.Tensor, batch: Batch, mode: str) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x), batch, mode)
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class Esm2(nn.Module):
    """ESM-2 encoder: ``forward(tokens, mask)`` → last layer after ``emb_layer_norm_after``.

    ``attention`` (``sdpa`` | ``reference``, see :mod:`virnucpro.models.layers`) may be changed at any time; the caller
    passes a right-padded batch and gets ``[B, L, D]`` back.
    """

    def __init__(self, config: EsmConfig, attention: str = "sdpa") -> None:
        super().__init__()
        self.config = config
        self.attention = attention
        self.embed_tokens = nn.Embedding(len(ALPHABET), config.embed_dim, padding_idx=PAD)
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.layers))
        self.emb_layer_norm_after = nn.LayerNorm(config.embed_dim)

    def fuse(self) -> "Esm2":
        """Fuse each layer's q/k/v projections (after the checkpoint's separate weights are loaded)."""
        for layer in self.layers:
            layer.self_attn.fuse()
        return self

    def embed(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token embeddings with fair-esm's token-dropout rescaling and zeroed padding."""
        x = self.embed_tokens(tokens)
        if self.config.token_dropout:
            is_mask = tokens == MASK
            x = x.masked_fill(is_mask[..., None], 0.0)
            observed = is_mask.sum(-1).to(x.dtype) / mask.sum(-1).to(x.dtype)
            x = x * (1 - _TOKEN_DROPOUT_TRAIN_RATIO) / (1 - observed)[:, None, None]
        return x * mask[..., None].to(x.dtype)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, padded: bool = True) -> torch.Tensor:
        """``padded=False`` is the caller's word that no row of the batch is padded (it knows the lengths on the host):
        then attention runs without a mask (FlashAttention-eligible on CUDA). It is never inferred from ``mask``:
        reading a device tensor would make the host wait for the GPU and leave one batch in flight."""
        x = self.embed(tokens, mask)
        masked = padded or self.attention == "reference"
        batch = Batch(torch.arange(mask.shape[1], device=mask.device), mask[:, None, None, :] if masked else None)
        for layer in self.layers:
            x = layer(x, batch, self.attention)
        return self.emb_layer_norm_after(x)


# --------------------------------------------------------------------------------------------------------------------
# Tokenisation


def tokenize_proteins(ids: Sequence[str], sequences: Sequence[str]) -> list[np.ndarray]:
    """``<cls>`` + every residue + ``<eos>`` per protein, never truncated.

    As the original (fair-esm's batch converter without ``truncation_seq_length``), a protein longer than
    :data:`MAX_RESIDUES` goes through ESM-2 WHOLE (its later residues still shape the earlier ones through attention);
    only the mean is limited to its first 1024 residues (``LoadedEncoder.pool_limit``). Such proteins are logged.
    """
    # Vectorised over the whole list (one lookup, one scatter) so the host keeps up with a GPU: per-protein numpy
    # calls cost more than the lookup itself at ~170 residues.
    n = len(sequences)
    if n == 0:
        return []
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=n)
    joined = "".join(sequences)
    if joined.isascii():
        body = _BYTE_TO_ID[np.frombuffer(joined.encode("ascii"), dtype=np.uint8)]
    else:
        body = np.array([_char_id(c) for c in joined], dtype=np.int32)
    ends = np.cumsum(lengths + 2)
    flat = np.empty(int(ends[-1]), dtype=np.int32)
    flat[ends - lengths - 2] = CLS
    flat[ends - 1] = EOS
    flat[np.arange(len(body)) + 2 * np.repeat(np.arange(n), lengths) + 1] = body
    out = [flat[a:b] for a, b in zip((ends - lengths - 2).tolist(), ends.tolist())]
    long = [ids[i] for i in np.flatnonzero(lengths > MAX_RESIDUES)]
    if long:
        log.warning(
            "%d protein(s) longer than %d residues: embedded whole, mean over the first %d residues (as the original),"
            " e.g. %s", len(long), MAX_RESIDUES, MAX_RESIDUES, long[:3],
        )
    return out


def _char_id(ch: str) -> int:
    return int(_BYTE_TO_ID[ord(ch)]) if ord(ch) < 256 else UNK


# --------------------------------------------------------------------------------------------------------------------
# Loading


def resolve_checkpoint(spec: str) -> Path:
    """A ``.pt`` (or converted ``.safetensors``) path as is; a fair-esm model name → torch hub cache, downloaded
    from fair-esm's URL when missing."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if _FAIR_ESM_NAME.fullmatch(spec):
        target = hub.esm_checkpoint_path(spec)
        if not target.is_file():
            hub.fetch_esm(spec, target)
        return target
    raise ModelError(f"{spec}: no such ESM-2 checkpoint file, and not a fair-esm model name (e.g. esm2_t36_3B_UR50D)")


def read_config(checkpoint: Any, where: str) -> EsmConfig:
    """``cfg['model']`` of a fair-esm checkpoint → :class:`EsmConfig`; missing fields name themselves."""
    cfg = plain(checkpoint.get("cfg")) if isinstance(checkpoint, dict) else None
    model_cfg = cfg.get("model") if isinstance(cfg, dict) else None
    if not isinstance(model_cfg, dict):
        raise ModelError(f"{where}: not a fair-esm ESM-2 checkpoint (no cfg['model'])")
    fields = {"layers": "encoder_layers", "embed_dim": "encoder_embed_dim", "ffn_dim": "encoder_ffn_embed_dim", "heads": "encoder_attention_heads"}
    values: dict[str, Any] = {}
    for name, key in fields.items():
        value = model_cfg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelError(f"{where}: cfg['model'][{key!r}] missing or not a positive integer")
        values[name] = value
    if values["embed_dim"] % values["heads"]:
        raise ModelError(f"{where}: encoder_embed_dim is not divisible by encoder_attention_heads")
    return EsmConfig(token_dropout=bool(model_cfg.get("token_dropout", True)), **values)


def read_state(checkpoint: Any, where: str) -> dict[str, torch.Tensor]:
    """Encoder weights without their ``encoder.sentence_encoder.`` prefix; the LM/contact heads are dropped."""
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ModelError(f"{where}: not a fair-esm checkpoint (no 'model' state dict)")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if _IGNORED.match(key):
            continue
        if not isinstance(value, torch.Tensor):
            raise ModelError(f"{where}: entry {key!r} is not a tensor")
        out[key[len(_PREFIX):] if key.startswith(_PREFIX) else key] = value
    return out


def _cast_keep_rotary(module: Esm2, state: dict[str, torch.Tensor], device: torch.device) -> None:
    """Put the rotary frequencies back in float32: in bf16 they would misplace positions by radians at 1000."""
    for n, layer in enumerate(module.layers):
        layer.self_attn.rot_emb.inv_freq = state[f"layers.{n}.self_attn.rot_emb.inv_freq"].to(device, torch.float32)


def model_checksum(spec: str) -> str:
    """SHA-256 of the checkpoint file (cached by size and mtime: hashing 5.7 GB once is enough)."""
    return file_sha256(resolve_checkpoint(spec))


def read_checkpoint(path: Path, device: torch.device) -> tuple[EsmConfig, dict[str, torch.Tensor]]:
    """Configuration and encoder weights of a fair-esm ``.pt`` (safe unpickling, memory-mapped) or of a
    ``.safetensors`` written by ``virnucpro models convert`` (no unpickling; memory-mapped, or read onto the GPU)."""
    if path.suffix == ".safetensors":
        fields, state = read_esm_safetensors(path, device)
        try:
            return EsmConfig(**fields), state
        except TypeError:
            raise ModelError(f"{path}: malformed ESM-2 configuration in the metadata: {fields}") from None
    checkpoint = load_esm_pickle(path)
    return read_config(checkpoint, str(path)), read_state(checkpoint, str(path))


def load_esm(
    spec: str, *, device: torch.device, dtype: Precision | torch.dtype, attention: str = "sdpa", compile: bool = False
) -> LoadedEncoder:
    """Load a fair-esm ESM-2 checkpoint (path or model name) strictly and safely onto ``device`` in ``dtype``.

    q/k/v are fused after the checkpoint's own keys were checked and loaded; ``compile`` wraps each layer in
    ``torch.compile`` (see :func:`~virnucpro.models.layers.compile_layers`).
    """
    path = resolve_checkpoint(spec)
    config, state = read_checkpoint(path, device)
    check_state_dict(config.expected_shapes(), state, str(path))
    module = materialize(lambda: Esm2(config, attention), state, device, dtype)
    _cast_keep_rotary(module, state, device)
    del state
    module.fuse()
    if compile:
        compile_layers(module.layers)
    return LoadedEncoder(
        name=spec,
        checksum=file_sha256(path),
        dim=config.embed_dim,
        module=module,
        tokenize=tokenize_proteins,
        pad_id=PAD,
        pool_skip=(1, 1),  # residues only: <cls> and <eos> are excluded
        info={"checkpoint": str(path), "layers": config.layers},
        pool_limit=MAX_RESIDUES,  # the original averages residues 1..1024 of a longer protein fed whole
    )
