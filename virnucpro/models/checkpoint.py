"""Reading model checkpoints without executing code from them: restricted unpickling with exact allow-lists, and the
safetensors form of ESM-2 that ``virnucpro models convert`` writes.

Every loader (ESM-2, DNABERT-S ``pytorch_model.bin``, the classifier, the cheap up-front checks, ``models convert``)
reads through this one module, so what counts as a safe file is decided in one place.

fair-esm ESM-2 checkpoints (an ``argparse.Namespace`` in ``cfg`` in the published files, omegaconf objects in files
written through omegaconf; docs/models.md) and VirNucPro classifiers (a whole pickled ``__main__.MLPClassifier``
module) cannot be read by ``torch.load(weights_only=True)`` as they are. Instead of turning the safety off, we keep
torch's restricted unpickler and allow-list exactly the classes these files contain: each foreign class becomes
:class:`PickledObject`, an inert record of the constructor arguments and state (``argparse.Namespace``, plain data, is
allowed as itself). No class from the file is imported or run; any other global makes the load fail with
:class:`~virnucpro.errors.ModelError` naming it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Iterable

import torch

from virnucpro.errors import ModelError


class PickledObject:
    """Inert stand-in for an allow-listed class: keeps what the pickle handed it, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def get(self, key: str, default: Any = None) -> Any:
        """Look up ``key`` in the captured state (a dict, or a ``(dict, slots)`` pair)."""
        state = self.state[0] if isinstance(self.state, tuple) else self.state
        return state.get(key, default) if isinstance(state, dict) else default


#: Our words for a file torch's restricted unpickler cannot read without running code from it (torch's own message
#: goes on to suggest turning the safety off); loaders may add what such a file usually is.
NEEDS_CODE = "it needs code to be run to load"


def safe_torch_load(
    path: str | os.PathLike[str],
    stand_ins: Iterable[str] = (),
    extra_globals: Iterable[Any] = (),
    *,
    what: str = "checkpoint",
) -> Any:
    """``torch.load`` with ``weights_only=True``, where each dotted name in ``stand_ins`` becomes a
    :class:`PickledObject`. Memory-maps the file so multi-GB checkpoints are not copied into RAM first.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: {what} not found")
    allowed: list[Any] = [(PickledObject, name) for name in stand_ins]
    allowed += list(extra_globals)
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        message = str(exc)
        found = re.search(r"unsupported global:? (?:GLOBAL )?([\w.]+)", message, re.IGNORECASE)
        # torch's own text goes on to offer turning the safety off: never pass that on
        detail = f"it references {found.group(1)}, which is not allowed" if found else NEEDS_CODE
        raise ModelError(f"{path}: refused to load {what}: {detail} (files are loaded without running code)") from None
    # garbage bytes reach torch's legacy-format unpickler, which fails with whatever its stack machine hits
    # (IndexError, KeyError, TypeError, ...): any of them means "not a readable checkpoint", never a traceback
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, IndexError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"{path}: cannot read {what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


#: Containers that appear in module/config pickles and are harmless.
BASIC_GLOBALS: tuple[Any, ...] = (set, dict, collections.OrderedDict, collections.defaultdict)


#: omegaconf classes a fair-esm ``cfg`` may pickle (stand-ins, nothing is imported). See docs/models.md for what the
#: published ESM-2 files contain and where that is known from.
OMEGACONF_STAND_INS = tuple(
    f"omegaconf.{name}"
    for name in (
        "base.ContainerMetadata", "base.Metadata", "dictconfig.DictConfig", "listconfig.ListConfig",
        "nodes.AnyNode", "nodes.StringNode", "nodes.IntegerNode", "nodes.FloatNode", "nodes.BooleanNode",
    )
)
#: Harmless globals an ESM-2 checkpoint may reference besides the omegaconf stand-ins. ``argparse.Namespace`` is what
#: the published fair-esm files pickle (``cfg['model']``; docs/models.md); it is plain data (a ``__dict__``), so the
#: real class is allowed rather than a stand-in.
ESM_GLOBALS: tuple[Any, ...] = BASIC_GLOBALS + ((object, "typing.Any"), int, float, str, bool, list, tuple, argparse.Namespace)


def load_esm_pickle(path: str | os.PathLike[str], what: str = "ESM-2 checkpoint") -> Any:
    """A fair-esm ``.pt`` checkpoint, unpickled with the ESM-2 allow-list (omegaconf stand-ins, ``argparse.Namespace``,
    plain types)."""
    return safe_torch_load(path, OMEGACONF_STAND_INS, ESM_GLOBALS, what=what)


def plain(obj: Any) -> Any:
    """Unwrap omegaconf stand-ins (DictConfig/ListConfig/value nodes) and ``argparse.Namespace`` into plain dicts,
    lists and values."""
    if isinstance(obj, argparse.Namespace):
        return plain(vars(obj))
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


#: safetensors metadata key holding the ESM-2 configuration and provenance (``virnucpro models convert``)
ESM_METADATA_KEY = "virnucpro_esm2"


def read_esm_safetensors(path: Path, device: torch.device) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config fields, state) of a converted ESM-2 file; tensors memory-mapped (CPU) or read onto ``device``."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device=str(device) if device.type == "cuda" else "cpu") as handle:
            meta = (handle.metadata() or {}).get(ESM_METADATA_KEY)
            if meta is None:
                raise ModelError(f"{path}: not an ESM-2 file written by 'virnucpro models convert' (no {ESM_METADATA_KEY} metadata)")
            state = {key: handle.get_tensor(key) for key in handle.keys()}
        return json.loads(meta)["config"], state
    except (SafetensorError, OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{path}: unreadable safetensors file ({exc})") from None
