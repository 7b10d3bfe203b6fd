"""Everything ``virnucpro run`` can check before it writes anything, cheapest first, so a typo or a wrong model
fails in seconds with the error a later stage would give, not hours into the embeddings."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from virnucpro.atomic import check_output_folder
from virnucpro.embed_jobs import plan_devices
from virnucpro.errors import InputError
from virnucpro.instream import STDIN, check_input, display_name
from virnucpro.models.classifier import check_classifier
from virnucpro.prepare import MAX_SHARDS
from virnucpro.runconfig import RunConfig

log = logging.getLogger("virnucpro.run")


@dataclass(frozen=True)
class RunChecks:
    """What :func:`validate_run` learnt about the models (recorded in run.log and the manifest)."""

    dnabert_dim: int
    esm_dim: int
    classifier_input_dim: int
    published_classifier: str | None
    warnings: tuple[str, ...] = ()  # logged while checking; the report and summary.json show them too


def validate_run(cfg: RunConfig) -> RunChecks:
    """Everything that can be checked before work starts, cheapest first; raises the error a later stage would.

    Inputs (:class:`InputError`, exit 2, the reader's own words), option values including ``--device`` and
    ``--precision`` (exit 2; a 16-bit mode on CPU is tried on this CPU's kernels), the output folder
    (:class:`~virnucpro.errors.StorageError`, exit 5), then the models (:class:`~virnucpro.errors.ModelError`, exit 3).
    Writes nothing.
    """
    for path in cfg.inputs:
        check_input(path)
        if is_stream(path):
            raise InputError(
                f"{display_name(path)}: run reads its inputs more than once (prepare, the final tables, the resume check), "
                "which a stream cannot give; save it to a file first, or give a .gz file as it is "
                "(streams work with 'virnucpro prepare')"
            )
    for option, value in (
        ("--shards", cfg.n_shards), ("--tokens-per-shard", cfg.tokens_per_shard),
        ("--tokens-per-batch-dna", cfg.tokens_per_batch_dna), ("--tokens-per-batch-protein", cfg.tokens_per_batch_protein),
        ("--workers", cfg.workers),
    ):
        if value is not None and value < 1:
            raise InputError(f"{option} must be a positive number, got {value}")
    if cfg.n_shards is not None and cfg.n_shards > MAX_SHARDS:
        raise InputError(f"--shards must be between 1 and {MAX_SHARDS}, got {cfg.n_shards}")
    from virnucpro.device import resolve_device, resolve_precision

    for device in plan_devices(cfg.device):  # a typo or a missing GPU fails here, not after run.log exists
        resolve_precision(cfg.precision, resolve_device(device))
    check_output_folder(cfg.outdir)
    from virnucpro.models.check import check_models

    models = check_models(cfg.dnabert, cfg.esm, cfg.classifier)
    published = check_classifier(cfg.classifier, cfg.chunk_length, cfg.allow_chunk_mismatch)
    log.info(
        "models checked: DNABERT-S %s (dim %d), ESM-2 %s (dim %d), classifier %s (%d inputs, 2 outputs)",
        models.dnabert_folder, models.dnabert_dim, models.esm_checkpoint, models.esm_dim, cfg.classifier,
        models.classifier_input_dim,
    )
    return RunChecks(models.dnabert_dim, models.esm_dim, models.classifier_input_dim, published)


def is_stream(path: Path | str) -> bool:
    """``-`` or anything that is not a regular file (a pipe such as ``<(zcat x.gz)``, ``/dev/stdin``)."""
    if str(path) == STDIN:
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False  # check_input has already said what is wrong with it


