"""ESM-2: a compact re-implementation of fair-esm's ``ESM2`` inference path, loading fair-esm ``.pt`` checkpoints safely.

What VirNucPro takes from ESM-2 is the last layer's representation (after ``emb_layer_norm_after``) averaged over
the residues, BOS/EOS excluded. The module mirrors ``esm/model/esm2.py``: token-dropout rescaling of the embeddings,
zeroed padding, pre-LayerNorm layers with rotary self-attention (queries scaled by head_dim^-0.5 before the
rotation), exact-GELU feed-forward. The masked-LM head and contact head are never built.

Checkpoints hold omegaconf objects in ``cfg``; they are read with ``weights_only=True`` and inert stand-ins for
exactly those classes (:mod:`virnucpro.models.safe_pickle`), so a tampered file cannot run code. The state dict is
memory-mapped and adopted on the meta device, so a 3B checkpoint is never held twice in host memory.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from virnucpro.checksum import file_sha256
from virnucpro.models.layers import LoadedEncoder, attend, check_state_dict, materialize
from virnucpro.errors import ModelError
from virnucpro.models import hub
from virnucpro.models.safe_pickle import BASIC_GLOBALS, PickledObject, safe_torch_load

log = logging.getLogger("virnucpro")

#: fair-esm's ESM-1b alphabet (used by all ESM-2 models): specials, residues, padding to a multiple of 8, <mask>.
ALPHABET: tuple[str, ...] = (
    ("<cls>", "<pad>", "<eos>", "<unk>")
    + tuple("LAGVSERTIDPKQNFYMHWCXBUZO.-")
    + ("<null_1>", "<mask>")
)
CLS, PAD, EOS, UNK = 0, 1, 2, 3
MASK = ALPHABET.index("<mask>")
#: The original's ``truncation_seq_length``: residues beyond this are not seen by the model.
MAX_RESIDUES = 1024
_TOKEN_DROPOUT_TRAIN_RATIO = 0.15 * 0.8
_PREFIX = "encoder.sentence_encoder."
_IGNORED = re.compile(r"^(encoder\.lm_head\.|contact_head\.|encoder\.contact_head\.)")
_FAIR_ESM_NAME = re.compile(r"esm2_t\d+_\d+[MB]_UR50D")

#: omegaconf classes a fair-esm ``cfg`` pickles (stand-ins, nothing is imported), and harmless type references.
OMEGACONF_STAND_INS = tuple(
    f"omegaconf.{name}"
    for name in (
        "base.ContainerMetadata", "base.Metadata", "dictconfig.DictConfig", "listconfig.ListConfig",
        "nodes.AnyNode", "nodes.StringNode", "nodes.IntegerNode", "nodes.FloatNode", "nodes.BooleanNode",
    )
)
_EXTRA_GLOBALS: tuple[Any, ...] = BASIC_GLOBALS + ((object, "typing.Any"), int, float, str, bool, list, tuple)

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

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(k.shape[-2], device=k.device, dtype=torch.float32)
        freqs = torch.outer(positions, self.inv_freq.float())
        table = torch.cat((freqs, freqs), dim=-1)
        cos, sin = table.cos().to(q.dtype), table.sin().to(q.dtype)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.rot_emb = Rotary(self.head_dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, length, _ = x.shape
        return x.view(b, length, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor, mode: str) -> torch.Tensor:
        q = self._split(self.q_proj(x) * self.head_dim**-0.5)  # fair-esm scales q before the rotation
        k, v = self._split(self.k_proj(x)), self._split(self.v_proj(x))
        q, k = self.rot_emb(q, k)
        context = attend(q, k, v, key_mask, 1.0, mode)
        b, _, length, _ = context.shape
        return self.out_proj(context.transpose(1, 2).reshape(b, length, -1))


class Layer(nn.Module):
    """Pre-LayerNorm transformer layer (fair-esm ``TransformerLayer`` with rotary attention)."""

    def __init__(self, c: EsmConfig) -> None:
        super().__init__()
        self.self_attn = SelfAttention(c.embed_dim, c.heads)
        self.self_attn_layer_norm = nn.LayerNorm(c.embed_dim)
        self.fc1 = nn.Linear(c.embed_dim, c.ffn_dim)
        self.fc2 = nn.Linear(c.ffn_dim, c.embed_dim)
        self.final_layer_norm = nn.LayerNorm(c.embed_dim)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor, mode: str) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x), key_mask, mode)
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class Esm2(nn.Module):
    """ESM-2 encoder: ``forward(tokens, mask)`` → last layer after ``emb_layer_norm_after``."""

    def __init__(self, config: EsmConfig, attention: str = "sdpa") -> None:
        super().__init__()
        self.config = config
        self.attention = attention
        self.embed_tokens = nn.Embedding(len(ALPHABET), config.embed_dim, padding_idx=PAD)
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.layers))
        self.emb_layer_norm_after = nn.LayerNorm(config.embed_dim)

    def embed(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token embeddings with fair-esm's token-dropout rescaling and zeroed padding."""
        x = self.embed_tokens(tokens)
        if self.config.token_dropout:
            is_mask = tokens == MASK
            x = x.masked_fill(is_mask[..., None], 0.0)
            observed = is_mask.sum(-1).to(x.dtype) / mask.sum(-1).to(x.dtype)
            x = x * (1 - _TOKEN_DROPOUT_TRAIN_RATIO) / (1 - observed)[:, None, None]
        return x * mask[..., None].to(x.dtype)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens, mask)
        key_mask = mask[:, None, None, :]
        for layer in self.layers:
            x = layer(x, key_mask, self.attention)
        return self.emb_layer_norm_after(x)


# --------------------------------------------------------------------------------------------------------------------
# Tokenisation


def tokenize_proteins(ids: Sequence[str], sequences: Sequence[str]) -> list[np.ndarray]:
    """``<cls>`` + first 1024 residues + ``<eos>`` per protein; longer ones are truncated (as the original) and logged."""
    out: list[np.ndarray] = []
    truncated: list[str] = []
    for seq_id, seq in zip(ids, sequences):
        if len(seq) > MAX_RESIDUES:
            truncated.append(seq_id)
            seq = seq[:MAX_RESIDUES]
        raw = np.frombuffer(seq.encode("latin-1", errors="replace"), dtype=np.uint8)
        body = _BYTE_TO_ID[raw] if seq.isascii() else np.array([_char_id(c) for c in seq], dtype=np.int32)
        out.append(np.concatenate(([CLS], body, [EOS])).astype(np.int32))
    if truncated:
        log.warning(
            "%d protein(s) longer than %d residues: only the first %d are embedded (as the original), e.g. %s",
            len(truncated), MAX_RESIDUES, MAX_RESIDUES, truncated[:3],
        )
    return out


def _char_id(ch: str) -> int:
    return int(_BYTE_TO_ID[ord(ch)]) if ord(ch) < 256 else UNK


# --------------------------------------------------------------------------------------------------------------------
# Loading


def resolve_checkpoint(spec: str) -> Path:
    """A ``.pt`` path as is; a fair-esm model name → torch hub cache, downloaded from fair-esm's URL when missing."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if _FAIR_ESM_NAME.fullmatch(spec):
        target = hub.esm_checkpoint_path(spec)
        if not target.is_file():
            hub.fetch_esm(spec, target)
        return target
    raise ModelError(f"{spec}: no such ESM-2 checkpoint file, and not a fair-esm model name (e.g. esm2_t36_3B_UR50D)")


def plain(obj: Any) -> Any:
    """Unwrap omegaconf stand-ins (DictConfig/ListConfig/value nodes) into plain dicts, lists and values."""
    if isinstance(obj, PickledObject):
        content = obj.get("_content")
        if content is not None:
            return plain(content)
        return plain(obj.get("_val"))
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


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


def load_esm(spec: str, *, device: torch.device, dtype: torch.dtype, attention: str = "sdpa") -> LoadedEncoder:
    """Load a fair-esm ESM-2 checkpoint (path or model name) strictly and safely onto ``device`` in ``dtype``."""
    path = resolve_checkpoint(spec)
    checkpoint = safe_torch_load(path, OMEGACONF_STAND_INS, _EXTRA_GLOBALS, what="ESM-2 checkpoint")
    config = read_config(checkpoint, str(path))
    state = read_state(checkpoint, str(path))
    check_state_dict(config.expected_shapes(), state, str(path))
    module = materialize(lambda: Esm2(config, attention), state, device, dtype)
    _cast_keep_rotary(module, state, device)
    del checkpoint
    return LoadedEncoder(
        name=spec,
        checksum=file_sha256(path),
        dim=config.embed_dim,
        module=module,
        tokenize=tokenize_proteins,
        pad_id=PAD,
        pool_skip=(1, 1),  # residues only: <cls> and <eos> are excluded
        info={"checkpoint": str(path), "layers": config.layers},
    )

