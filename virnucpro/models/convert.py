"""``virnucpro models convert``: pickled checkpoints → safetensors, the input kind detected from the file itself.

* A fair-esm ESM-2 ``.pt`` (``{'model', 'cfg'}``) becomes ``<output>.safetensors``: the encoder weights (heads
  dropped) with the architecture in the file's metadata. Loading it needs no unpickling at all, and safetensors
  memory-maps it (or reads it straight onto the GPU), so a pipeline task starts computing sooner.
  ``--dtype keep`` (default) stores the checkpoint's own dtype, which is lossless (the 3B checkpoint is fp16:
  converting it to bf16 would DROP three mantissa bits, so bf16 is only written when asked for).
* The original's pickled classifier ``.pth`` becomes safetensors as before
  (:func:`virnucpro.models.classifier.convert_classifier`).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
import torch

from virnucpro.atomic import atomic_path
from virnucpro.checksum import file_sha256
from virnucpro.errors import ModelError
from virnucpro.models.checkpoint import ESM_METADATA_KEY, load_esm_pickle
from virnucpro.models.esm import read_config, read_state
from virnucpro.models.layers import check_state_dict

log = logging.getLogger("virnucpro")

CONVERT_DTYPES = {"keep": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def is_esm_checkpoint(path: Path) -> bool:
    """True when ``path`` loads (safely) as a fair-esm checkpoint; a pickled classifier module is refused by the
    ESM allow-list and therefore reported False."""
    try:
        checkpoint = load_esm_pickle(path, what="checkpoint")
    except ModelError:
        return False
    return isinstance(checkpoint, dict) and "model" in checkpoint and "cfg" in checkpoint


def convert_esm(source: Path, target: Path, dtype: str = "keep") -> Path:
    """Write an ESM-2 checkpoint's encoder weights (strictly checked) as safetensors with its config in metadata."""
    from safetensors.torch import save_file

    if dtype not in CONVERT_DTYPES:
        raise ModelError(f"--dtype {dtype!r}: expected one of {', '.join(CONVERT_DTYPES)}")
    checkpoint = load_esm_pickle(source)
    config = read_config(checkpoint, str(source))
    state = read_state(checkpoint, str(source))
    check_state_dict(config.expected_shapes(), state, str(source))
    cast = CONVERT_DTYPES[dtype]
    tensors = {}
    for key, value in state.items():
        keep_fp32 = key.endswith("rot_emb.inv_freq")  # positions need float32 (see esm._cast_keep_rotary)
        out = value.to(torch.float32) if keep_fp32 else (value.to(cast) if cast is not None else value)
        tensors[key] = out.contiguous()
    meta = {ESM_METADATA_KEY: json.dumps({"config": config.__dict__, "source": Path(source).name, "source_sha256": file_sha256(source)})}
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return Path(target)


def cli_convert(args: argparse.Namespace) -> int:
    """``virnucpro models convert``: ESM-2 ``.pt`` or classifier ``.pth`` → safetensors (kind detected)."""
    source = Path(args.input)
    if is_esm_checkpoint(source):
        out = convert_esm(source, Path(args.output), getattr(args, "dtype", "keep") or "keep")
        log.info("wrote ESM-2 %s", out)
        return 0
    if getattr(args, "dtype", "keep") not in (None, "keep"):
        raise ModelError(f"{source}: --dtype applies to ESM-2 checkpoints only (this is not one)")
    from virnucpro.models.classifier import convert_classifier

    out = convert_classifier(source, Path(args.output))
    log.info("wrote classifier %s", out)
    return 0
