"""``virnucpro benchmark`` and ``virnucpro profile``: stage throughput and the token budget per forward pass.

Both measure the production code paths (``prepare``, :meth:`Embedder.embed_fasta`, :meth:`Embedder.embed_tokens`,
:func:`plan_batches`) rather than re-implementations, so a number here is what the pipeline gets. One job per module:

* :mod:`~virnucpro.bench.synthetic` — reads that carry a stop-free frame (random DNA yields almost none);
* :mod:`~virnucpro.bench.random_models` — random DNABERT-S / ESM-2 of the real size built on the device, or a local model;
* :mod:`~virnucpro.bench.inputs` — the timed prepare stage and the production FASTA → HDF5 path over its shards;
* :mod:`~virnucpro.bench.host` — the host ceiling (``--host-only``: the forward pass is a no-op);
* :mod:`~virnucpro.bench.model_speed` — forward-only and end-to-end speed, MFU, device busy time in the real run;
* :mod:`~virnucpro.bench.flops` — FLOPs per token, the device's peak, MFU;
* :mod:`~virnucpro.bench.report` — hardware, memory, stage clock, the JSON writer all benchmark scripts use;
* :mod:`~virnucpro.bench.command` / :mod:`~virnucpro.bench.profile` — the two CLI commands.
"""

from virnucpro.bench.command import benchmark, cli_benchmark
from virnucpro.bench.flops import datasheet_peak, mfu
from virnucpro.bench.inputs import Dataset, run_prepare
from virnucpro.bench.profile import cli_profile
from virnucpro.bench.random_models import get_embedder, train_dna_tokenizer
from virnucpro.bench.report import emit_report
from virnucpro.bench.synthetic import chunk_for_read_length, synthetic_read, write_synthetic_fasta

__all__ = [
    "Dataset",
    "benchmark",
    "chunk_for_read_length",
    "cli_benchmark",
    "cli_profile",
    "datasheet_peak",
    "emit_report",
    "get_embedder",
    "mfu",
    "run_prepare",
    "synthetic_read",
    "train_dna_tokenizer",
    "write_synthetic_fasta",
]
