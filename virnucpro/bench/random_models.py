"""Encoders for speed measurements: random DNABERT-S / ESM-2 of the real (or a tiny) size, or a local model.

Speed depends on shapes and dtype, not on weight values, so a GPU can be benchmarked at full model size without
downloading 6 GB of weights: the modules are built directly on the device in the run dtype (no weights read).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from virnucpro.bench.synthetic import synthetic_read
from virnucpro.device import Precision, as_precision, precision_name
from virnucpro.embed import Embedder, load_embedder
from virnucpro.models.layers import LoadedEncoder, apply_precision

RANDOM_TINY = "random-tiny"
RANDOM_FULL = "random-full"
RANDOM_ALIASES = {"random-3b": RANDOM_FULL, "random-full": RANDOM_FULL, "random-tiny": RANDOM_TINY}
#: BPE special tokens in the order DNABERT-S uses (ids 0-4).
_DNA_SPECIALS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]


def random_size(spec: str | None) -> str | None:
    """``random-tiny`` / ``random-full`` for a random-model name (``random-3B`` is an alias of full), else None."""
    return RANDOM_ALIASES.get(spec.lower()) if spec else None


def dna_config(size: str, vocab_size: int) -> Any:
    """DNABERT-S's shape (768 × 12) or a tiny one (64 × 2)."""
    from virnucpro.models.dnabert import DnaBertConfig

    if size == RANDOM_TINY:
        return DnaBertConfig(vocab_size, 64, 2, 4, 128, 2, 1e-12)
    return DnaBertConfig(vocab_size, 768, 12, 12, 3072, 2, 1e-12)  # DNABERT-S


def esm_config(size: str) -> Any:
    """ESM-2 3B's shape (2560 × 36) or a tiny one (64 × 2)."""
    from virnucpro.models.esm import EsmConfig

    if size == RANDOM_TINY:
        return EsmConfig(layers=2, embed_dim=64, ffn_dim=256, heads=4, token_dropout=True)
    return EsmConfig(layers=36, embed_dim=2560, ffn_dim=10240, heads=40, token_dropout=True)  # ESM-2 3B


def _build_on(build: Any, device: torch.device, dtype: Precision | torch.dtype) -> torch.nn.Module:
    """Construct directly on ``device`` in ``dtype`` (a 3B model built in fp32 on the host first would take minutes)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(as_precision(dtype).dtype)
    try:
        with device:
            module = build()
    finally:
        torch.set_default_dtype(previous)
    return apply_precision(module, device, dtype)


def train_dna_tokenizer(sequences: Iterable[str], vocab_size: int, folder: Path) -> Path:
    """A DNABERT-style BPE tokenizer ([UNK] [CLS] [SEP] [PAD] [MASK] = 0-4, [CLS] x [SEP]) trained on ``sequences``.

    Random DNABERT models have no tokenizer; training one on the benchmark's own frames gives realistic token counts
    (the real DNABERT-S vocabulary is also a 4096-token BPE over DNA). Saved as ``tokenizer.json`` so the production
    :class:`~virnucpro.models.dnabert.DnaTokenizer` reads it.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()  # as DNABERT-S's own tokenizer.json
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=_DNA_SPECIALS, show_progress=False)
    tokenizer.train_from_iterator((s.upper() for s in sequences), trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    path = folder / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def random_dna_tokenizer(size: str, dna_sequences: Sequence[str] = ()) -> tuple[Any, int]:
    """The production :class:`~virnucpro.models.dnabert.DnaTokenizer` over a BPE trained on ``dna_sequences``, and
    its vocabulary size (256 tiny / 4096 full, as DNABERT-S); 200 synthetic 500 bp reads when none are given."""
    from virnucpro.models.dnabert import DnaTokenizer

    vocab = 256 if size == RANDOM_TINY else 4096
    with tempfile.TemporaryDirectory() as tmp:
        corpus = list(dna_sequences) or [synthetic_read(500, np.random.default_rng(i)) for i in range(200)]
        return DnaTokenizer(train_dna_tokenizer(corpus, vocab, Path(tmp)), vocab), vocab


def random_embedder(
    kind: str, size: str, device: torch.device, dtype: torch.dtype, attention: str, dna_sequences: Sequence[str] = ()
) -> Embedder:
    """An :class:`Embedder` around a randomly initialised DNABERT-S / ESM-2 of the named size."""
    if kind == "dna":
        from virnucpro.models.dnabert import DnaBert

        tokenizer, vocab = random_dna_tokenizer(size, dna_sequences)
        config = dna_config(size, vocab)
        module = _build_on(lambda: DnaBert(config, attention), device, dtype)
        encoder = LoadedEncoder(size, "random", config.hidden_size, module, tokenizer, tokenizer.pad_id, (0, 0),
                                {"tokenizer": "bpe-trained-on-input"})
    else:
        from virnucpro.models.esm import PAD, Esm2, tokenize_proteins

        config = esm_config(size)
        module = _build_on(lambda: Esm2(config, attention), device, dtype)
        encoder = LoadedEncoder(size, "random", config.embed_dim, module, tokenize_proteins, PAD, (1, 1), {})
    return Embedder(kind, encoder, device, dtype)


def get_embedder(
    kind: str, spec: str | None, device: torch.device, dtype: Precision | torch.dtype, attention: str = "sdpa",
    dna_sequences: Sequence[str] = (), **engine: Any,
) -> Embedder:
    """``random-tiny`` / ``random-full`` (alias ``random-3B``) or a local model path; default by device type.

    ``engine`` passes pipeline options (``workers``, ``chunk_size``, ``in_flight``) to the :class:`Embedder`.
    """
    spec = spec or (RANDOM_FULL if device.type == "cuda" else RANDOM_TINY)
    size = random_size(spec)
    if size is not None:
        embedder = random_embedder(kind, size, device, dtype, attention, dna_sequences)
        for key, value in engine.items():
            setattr(embedder, key, value)
        return embedder
    return load_embedder(kind, spec, str(device), precision_name(dtype), attention, **engine)
