"""Load pickled checkpoints without executing untrusted code.

The published ESM-2 checkpoints (omegaconf objects in ``cfg``) and VirNucPro classifiers (a whole pickled
``__main__.MLPClassifier`` module) cannot be read by ``torch.load(weights_only=True)`` as they are. Instead of turning
the safety off, we keep torch's restricted unpickler and allow-list exactly the class names these files contain,
mapping each to :class:`PickledObject`, an inert record of the constructor arguments and state. No class from the file
is imported or run; any other global makes the load fail with :class:`~virnucpro.errors.ModelError` naming it.
"""

from __future__ import annotations

import collections
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
        detail = f"it references {found.group(1)}, which is not allowed" if found else message.splitlines()[0]
        raise ModelError(f"{path}: refused to load {what}: {detail} (files are loaded without running code)") from None
    # garbage bytes reach torch's legacy-format unpickler, which fails with whatever its stack machine hits
    # (IndexError, KeyError, TypeError, ...): any of them means "not a readable checkpoint", never a traceback
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, IndexError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"{path}: cannot read {what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


#: Containers that appear in module/config pickles and are harmless.
BASIC_GLOBALS: tuple[Any, ...] = (set, dict, collections.OrderedDict, collections.defaultdict)
