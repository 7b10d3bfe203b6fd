"""The host ceiling (``virnucpro benchmark --host-only``): the production FASTA → HDF5 path with a no-op forward.

Everything but the model is real: the model's tokenizer (a random model's trained one), its width (rows written are
that wide), reading, batching, padding, pinning, the device loop and the HDF5 writer. What this reports is the most
sequences per second the host can feed a device; the device must not be faster than that or it waits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from virnucpro.bench.inputs import Dataset, embed_fasta_files
from virnucpro.bench.random_models import RANDOM_FULL, dna_config, esm_config, random_dna_tokenizer, random_size
from virnucpro.bench.report import cpu_seconds, peak_rss_bytes
from virnucpro.device import Precision
from virnucpro.embed import Embedder
from virnucpro.models.layers import LoadedEncoder


class _NoModel(torch.nn.Module):
    """Stands in for the encoder in host-only mode: :meth:`Embedder.step` never calls it."""

    attention = "none"

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # pragma: no cover - never called
        raise RuntimeError("host-only embedder has no model")


def host_only_embedder(
    kind: str, spec: str | None, device: torch.device, dtype: Precision | torch.dtype,
    dna_sequences: Sequence[str] = (), workers: int | None = None,
) -> Embedder:
    """The production :class:`Embedder` with its forward pass replaced by a no-op (``host_only``).

    No weights are built, so ``random-full`` (the default here) costs nothing; of a local model only the tokenizer
    and the width are read.
    """
    spec = spec or RANDOM_FULL
    size = random_size(spec)
    if kind == "dna":
        from virnucpro.models.dnabert import DnaBertConfig, DnaTokenizer, resolve_folder

        if size is not None:
            tokenizer, vocab = random_dna_tokenizer(size, dna_sequences)
            dim = dna_config(size, vocab).hidden_size
        else:
            folder = resolve_folder(spec)
            config = DnaBertConfig.from_json(folder / "config.json")
            tokenizer, dim = DnaTokenizer(folder / "tokenizer.json", config.vocab_size), config.hidden_size
        encoder = LoadedEncoder(size or spec, "host-only", dim, _NoModel(), tokenizer, tokenizer.pad_id, (0, 0), {})
    else:
        from virnucpro.models.check import check_esm
        from virnucpro.models.esm import PAD, tokenize_proteins

        # a local checkpoint's width through the production loader's own checks (no model built)
        dim = esm_config(size).embed_dim if size is not None else check_esm(spec)[1]
        encoder = LoadedEncoder(size or spec, "host-only", dim, _NoModel(), tokenize_proteins, PAD, (1, 1), {})
    return Embedder(kind, encoder, device, dtype, workers=workers, host_only=True)


def host_stage(embedder: Embedder, data: Dataset, tokens_per_batch: int | None, workdir: Path) -> dict[str, Any]:
    """Host ceiling of one input: sequences and tokens per second, CPU seconds and peak RSS of the process."""
    stage = {"stage": embedder.kind, "mode": "host-only", "input": data.name, "chunk_length": data.chunk_length,
             "model": embedder.name, "dim": embedder.dim, "workers": embedder.workers}
    tpb = tokens_per_batch or embedder.default_tokens_per_batch()
    cpu_start = cpu_seconds()
    total = embed_fasta_files(embedder, data.files(embedder.kind), workdir, tpb)
    cpu = cpu_seconds() - cpu_start
    seconds = total["seconds"]
    return {
        **stage,
        "sequences": total["sequences"],
        "tokens": total["tokens"],
        "tokens_per_batch": tpb,
        "seconds": round(seconds, 4),
        "host_seq_per_s": round(total["sequences"] / seconds, 1) if seconds > 0 else 0.0,
        "host_tokens_per_s": round(total["tokens"] / seconds, 1) if seconds > 0 else 0.0,
        # CPU time of the whole process over the stage: seq per CPU-second is robust to other load on the machine
        "cpu_seconds": round(cpu, 3),
        "host_seq_per_cpu_s": round(total["sequences"] / cpu, 1) if cpu > 0 else 0.0,
        "peak_rss_bytes": peak_rss_bytes(),
    }
