"""DNABERT-S: a compact MosaicBERT encoder of our own, loading the published Hugging Face folder as it is.

The original loads DNABERT-S with remote code enabled, i.e. it executes Python shipped with the model. We
never do: the architecture below is the remote code's ``BertModel`` inference path written out (ALiBi attention, no
position embeddings, post-LayerNorm, gated-GELU feed-forward), with module names chosen so the published weight
names load strictly. Dropout is absent because inference never uses it.

Equivalence with the original, which runs one sequence at a time without padding: padded keys get the remote code's
additive -10000 mask (exp(-10000) is 0 in every float format), and padded queries are dropped by the pooling, so a
batched row equals the unbatched one up to float rounding.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from virnucpro.checksum import tree_sha256
from virnucpro.device import Precision
from virnucpro.models.layers import (
    LoadedEncoder, Linear, attend, check_state_dict, compile_layers, materialize,
)
from virnucpro.errors import ModelError
from virnucpro.models import hub
from virnucpro.models.checkpoint import safe_torch_load

log = logging.getLogger("virnucpro")

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
#: Key prefixes that may surround the encoder's weights: ``bert.`` when saved from a masked-LM wrapper.
_OPTIONAL_PREFIX = "bert."
#: Parts of the checkpoint we do not use: the masked-LM head and the pooler (VirNucPro averages hidden states).
_IGNORED = re.compile(r"^(cls\.|pooler\.)")
_KEY_MASK = -10000.0  # the remote code's additive padding mask
T = TypeVar("T")


@dataclass(frozen=True)
class DnaBertConfig:
    """The fields of ``config.json`` the architecture depends on."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    type_vocab_size: int
    layer_norm_eps: float

    @classmethod
    def from_json(cls, path: Path) -> "DnaBertConfig":
        """Read ``config.json``; a missing or malformed field is a :class:`ModelError` naming it."""
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable model configuration ({exc})") from None
        values: dict[str, Any] = {}
        for name, kind in (
            ("vocab_size", int), ("hidden_size", int), ("num_hidden_layers", int), ("num_attention_heads", int),
            ("intermediate_size", int), ("type_vocab_size", int), ("layer_norm_eps", float),
        ):
            if not isinstance(raw.get(name), (int, float)) or isinstance(raw.get(name), bool):
                raise ModelError(f"{path}: configuration field {name!r} missing or not a number")
            values[name] = kind(raw[name])
        config = cls(**values)
        if config.hidden_size % config.num_attention_heads:
            raise ModelError(f"{path}: hidden_size {config.hidden_size} is not divisible by num_attention_heads")
        return config

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every weight name of the architecture and the shape this configuration implies."""
        h, i = self.hidden_size, self.intermediate_size
        shapes: dict[str, tuple[int, ...]] = {
            "embeddings.word_embeddings.weight": (self.vocab_size, h),
            "embeddings.token_type_embeddings.weight": (self.type_vocab_size, h),
            "embeddings.LayerNorm.weight": (h,),
            "embeddings.LayerNorm.bias": (h,),
        }
        for n in range(self.num_hidden_layers):
            p = f"encoder.layer.{n}."
            shapes.update({
                p + "attention.self.Wqkv.weight": (3 * h, h),
                p + "attention.self.Wqkv.bias": (3 * h,),
                p + "attention.output.dense.weight": (h, h),
                p + "attention.output.dense.bias": (h,),
                p + "attention.output.LayerNorm.weight": (h,),
                p + "attention.output.LayerNorm.bias": (h,),
                p + "mlp.gated_layers.weight": (2 * i, h),
                p + "mlp.wo.weight": (h, i),
                p + "mlp.wo.bias": (h,),
                p + "mlp.layernorm.weight": (h,),
                p + "mlp.layernorm.bias": (h,),
            })
        return shapes


def alibi_slopes(n_heads: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """ALiBi head slopes (float32, on ``device``) as MosaicBERT computes them, including head counts that are not
    powers of two.

    For 2^k heads: s, s², … with s = 2^(-8/n). Otherwise the slopes of the largest power of two p below n, followed
    by every second slope of the 2p-head list (DNABERT-S has 12 heads: 1/2 … 1/256, then 2^-0.5 … 2^-3.5).
    Computed on the device from ``arange`` (exponents in float64, exact here): building them from a host list would
    be a host-to-device copy, which makes the host wait.
    """
    closest = 2 ** math.floor(math.log2(n_heads))
    first = torch.arange(1, closest + 1, device=device, dtype=torch.float64) * (-8.0 / closest)
    rest = (torch.arange(n_heads - closest, device=device, dtype=torch.float64) * 2 + 1) * (-8.0 / (2 * closest))
    return torch.exp2(torch.cat((first, rest))).to(torch.float32)


class _Embeddings(nn.Module):
    def __init__(self, c: DnaBertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # token type is always 0 in VirNucPro (single segment); no position embeddings: ALiBi encodes position
        return self.LayerNorm(self.word_embeddings(ids) + self.token_type_embeddings.weight[0])


class _SelfAttention(nn.Module):
    def __init__(self, c: DnaBertConfig) -> None:
        super().__init__()
        self.Wqkv = Linear(c.hidden_size, 3 * c.hidden_size)


class _AttentionOutput(nn.Module):
    def __init__(self, c: DnaBertConfig) -> None:
        super().__init__()
        self.dense = Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)


class _Attention(nn.Module):
    def __init__(self, c: DnaBertConfig) -> None:
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _AttentionOutput(c)
        self.heads = c.num_attention_heads

    def forward(self, x: torch.Tensor, bias: torch.Tensor, mode: str) -> torch.Tensor:
        width = x.shape[-1]
        head_dim = width // self.heads
        scale = 1.0 / math.sqrt(head_dim)
        # fused projection laid out as (q | k | v), each split into heads: '... (t h d) -> t ... h d'
        q, k, v = self.self.Wqkv(x).unflatten(-1, (3, self.heads, head_dim)).permute(2, 0, 3, 1, 4)  # 3 × [B, H, L, d]
        context = attend(q, k, v, bias, scale, mode).transpose(1, 2).flatten(-2)
        return self.output.LayerNorm(self.output.dense(context) + x)


class _GatedMLP(nn.Module):
    def __init__(self, c: DnaBertConfig) -> None:
        super().__init__()
        self.intermediate = c.intermediate_size
        self.gated_layers = Linear(c.hidden_size, 2 * c.intermediate_size, bias=False)
        self.wo = Linear(c.intermediate_size, c.hidden_size)
        self.layernorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gated, plain = self.gated_layers(x).split(self.intermediate, dim=-1)
        return self.layernorm(self.wo(F.gelu(gated) * plain) + x)  # exact (erf) GELU, as nn.GELU() in the original


class _Layer(nn.Module):
    def __init__(self, c: DnaBertConfig) -> None:
        super().__init__()
        self.attention = _Attention(c)
        self.mlp = _GatedMLP(c)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, mode: str) -> torch.Tensor:
        return self.mlp(self.attention(x, bias, mode))


class _Encoder(nn.Module):
    def __init__(self, c: DnaBertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))


class DnaBert(nn.Module):
    """MosaicBERT encoder: ``forward(ids, mask)`` → last hidden state ``[B, L, D]``.

    ``attention`` is ``sdpa`` | ``reference`` (see :mod:`virnucpro.models.layers`).
    """

    def __init__(self, config: DnaBertConfig, attention: str = "sdpa") -> None:
        super().__init__()
        self.config = config
        self.attention = attention
        self._alibi_tables: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)

    def alibi(self, length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``-slope(h)·|i-j|`` as an ``[H, length, length]`` view of a table cached per (device, dtype).

        The table is built once (in float32, then cast) at a size rounded up to a multiple of 128 and rebuilt only
        when a longer batch arrives; its top-left corner is exactly the table of any shorter length. The row stride
        stays a multiple of 16 elements, the alignment CUDA's memory-efficient SDPA needs to use it without a copy.
        """
        table = self._alibi_tables.get((device, dtype))
        if table is None or table.shape[-1] < length:
            size = -(-length // 128) * 128
            pos = torch.arange(size, device=device, dtype=torch.float32)
            distance = (pos[None, :] - pos[:, None]).abs()
            slopes = alibi_slopes(self.config.num_attention_heads, device)
            table = (-slopes[:, None, None] * distance[None, :, :]).to(dtype)
            self._alibi_tables[(device, dtype)] = table
        return table[:, :length, :length]

    def attention_bias(self, mask: torch.Tensor, dtype: torch.dtype, padded: bool = True) -> torch.Tensor:
        """The cached ALiBi table ``[1, H, L, L]`` (a view: nothing built per batch) when ``padded`` is False; with
        padding, ALiBi plus -10000 on padded keys, ``[B, H, L, L]`` (one addition of the cached table and the key mask).
        """
        alibi = self.alibi(mask.shape[1], mask.device, dtype)[None]
        if not padded and self.attention != "reference":
            return alibi
        return alibi + torch.where(mask, 0.0, _KEY_MASK).to(dtype)[:, None, None, :]

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, padded: bool = True) -> torch.Tensor:
        """``padded=False`` is the caller's word that no row of the batch is padded (it knows the lengths on the host):
        then the bias is the cached ALiBi table alone. It is never inferred from ``mask``: reading a device tensor would
        make the host wait for the GPU and leave one batch in flight."""
        x = self.embeddings(ids)
        bias = self.attention_bias(mask, x.dtype, padded)
        for layer in self.encoder.layer:
            x = layer(x, bias, self.attention)
        return x


# --------------------------------------------------------------------------------------------------------------------
# Loading


def resolve_folder(spec: str) -> Path:
    """A local folder as is; otherwise a Hugging Face id (``owner/name``) fetched or found in the HF cache."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ModelError(f"{spec}: DNABERT-S must be a folder (config.json, tokenizer.json, weights), not a file")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", spec):
        revision = hub.DNABERT_S_REVISION if spec == hub.DNABERT_S_REPO else None
        return hub.hf_snapshot(spec, revision=revision)
    raise ModelError(f"{spec}: no such DNABERT-S folder, and not a Hugging Face id (owner/name)")


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """The state dict from ``model.safetensors`` (no pickle at all) or ``pytorch_model.bin`` (weights only)."""
    if path.name.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable safetensors file ({exc})") from None
    state = safe_torch_load(path, what="DNABERT-S weights")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: not a plain state dict of tensors")
    return state


def map_weights(state: Mapping[str, T], config: DnaBertConfig, where: str) -> dict[str, T]:
    """The file's weights under the architecture's names, checked against ``config``.

    A leading ``bert.`` (a masked-LM wrapper's prefix) is stripped; the masked-LM head (``cls.*``) and the pooler are
    dropped. Anything else that does not map (an unknown key, a key present both with and without the prefix, a
    missing or misshaped weight) is a :class:`ModelError` naming the keys as the file spells them.
    """
    out: dict[str, T] = {}
    origin: dict[str, str] = {}
    for key, value in state.items():
        name = key[len(_OPTIONAL_PREFIX):] if key.startswith(_OPTIONAL_PREFIX) else key
        if _IGNORED.match(name):
            continue
        if name in out:
            raise ModelError(f"{where}: weight {name!r} is there twice, as {origin[name]!r} and as {key!r}")
        out[name], origin[name] = value, key
    check_state_dict(config.expected_shapes(), out, where, file_names=origin)  # type: ignore[arg-type]
    return out


class DnaTokenizer:
    """The folder's ``tokenizer.json`` (BPE; [CLS] … [SEP] added by its post-processor), input upper-cased first."""

    def __init__(self, path: Path, vocab_size: int) -> None:
        from tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed files
            raise ModelError(f"{path}: unreadable tokenizer ({str(exc).splitlines()[0]})") from None
        self.tokenizer.no_truncation()  # the original never truncates (no window comes near 512 tokens)
        self.tokenizer.no_padding()
        pad = self.tokenizer.token_to_id("[PAD]")
        if pad is None:
            raise ModelError(f"{path}: tokenizer has no [PAD] token")
        if self.tokenizer.get_vocab_size(with_added_tokens=True) > vocab_size:
            raise ModelError(f"{path}: tokenizer has more tokens than the model's vocab_size {vocab_size}")
        self.pad_id = int(pad)
        self.whole = _whole_word_tokenizer(self.tokenizer)

    def __call__(self, ids: Sequence[str], sequences: Sequence[str]) -> list[np.ndarray]:
        upper = [s.upper() for s in sequences]
        out: list[np.ndarray | None] = [None] * len(upper)
        # Letters/digits only (every real frame): the Whitespace pre-tokenizer would keep the sequence as ONE word,
        # so the tokenizer without it gives identical ids, about 3x faster. Anything else takes the full tokenizer.
        if self.whole is self.tokenizer:
            plain = list(range(len(upper)))
        else:
            plain = [i for i, s in enumerate(upper) if s.isascii() and s.isalnum()] if self.whole is not None else []
        rest = sorted(set(range(len(upper))) - set(plain)) if len(plain) < len(upper) else []
        for tokenizer, index in ((self.whole, plain), (self.tokenizer, rest)):
            if index:
                encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)  # fast: no offsets
                for i, encoding in zip(index, encode([upper[i] for i in index])):
                    out[i] = np.asarray(encoding.ids, dtype=np.int32)
        return out  # type: ignore[return-value]


def _whole_word_tokenizer(tokenizer: Any) -> Any:
    """The same tokenizer without its ``Whitespace`` pre-tokenizer, or None when that would not be equivalent.

    Only a tokenizer with no normalizer and exactly a ``Whitespace`` pre-tokenizer qualifies: for those, an input of
    letters and digits is a single pre-token, which is what the tokenizer without pre-tokenizer sees too.
    """
    from tokenizers import Tokenizer

    raw = json.loads(tokenizer.to_str())
    if raw.get("normalizer") is not None:
        return None
    if raw.get("pre_tokenizer") is None:
        return tokenizer
    if raw.get("pre_tokenizer") != {"type": "Whitespace"}:
        return None
    raw["pre_tokenizer"] = None
    return Tokenizer.from_str(json.dumps(raw))


def model_files(folder: Path) -> tuple[Path, Path, Path]:
    """config.json, tokenizer.json and the weight file that will be read (safetensors preferred)."""
    config_path, tokenizer_path = folder / "config.json", folder / "tokenizer.json"
    for needed in (config_path, tokenizer_path):
        if not needed.is_file():
            raise ModelError(f"{folder}: missing {needed.name}")
    weights = next((folder / n for n in WEIGHT_FILES if (folder / n).is_file()), None)
    if weights is None:
        raise ModelError(f"{folder}: no weights ({' or '.join(WEIGHT_FILES)})")
    return config_path, tokenizer_path, weights


def model_checksum(spec: str) -> str:
    """Digest over config, tokenizer and weights: what determines the embeddings."""
    return tree_sha256(list(model_files(resolve_folder(spec))))


def load_dnabert(
    spec: str, *, device: torch.device, dtype: Precision | torch.dtype, attention: str = "sdpa", compile: bool = False
) -> LoadedEncoder:
    """Load a DNABERT-S folder or hub id strictly; any key or shape that does not map is a :class:`ModelError`."""
    folder = resolve_folder(spec)
    config_path, tokenizer_path, weights_path = model_files(folder)
    config = DnaBertConfig.from_json(config_path)
    tokenizer = DnaTokenizer(tokenizer_path, config.vocab_size)
    state = map_weights(load_weights(weights_path), config, str(weights_path))
    module = materialize(lambda: DnaBert(config, attention), state, device, dtype)
    if compile:
        compile_layers(module.encoder.layer)
    checksum = tree_sha256([config_path, tokenizer_path, weights_path])
    return LoadedEncoder(
        name=spec,
        checksum=checksum,
        dim=config.hidden_size,
        module=module,
        tokenize=tokenizer,
        pad_id=tokenizer.pad_id,
        pool_skip=(0, 0),  # the original averages every token, [CLS] and [SEP] included
        info={"folder": str(folder), "weights": weights_path.name},
    )
