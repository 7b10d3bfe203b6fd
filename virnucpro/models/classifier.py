"""The VirNucPro MLP classifier: Linear → BatchNorm1d → ReLU → Dropout → Linear, scored with softmax in eval mode.

The published ``300_model.pth`` / ``500_model.pth`` are whole pickled ``__main__.MLPClassifier`` modules. We read them
through torch's restricted unpickler with inert stand-ins for exactly the classes such a file holds (see
:mod:`virnucpro.models.safe_pickle`), then take the tensors out: no class from the file is ever imported or run.
``virnucpro models convert`` writes the same weights as safetensors, which loads faster and needs no unpickling.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from virnucpro.atomic import atomic_path
from virnucpro.errors import ModelError
from virnucpro.models.safe_pickle import BASIC_GLOBALS, PickledObject, safe_torch_load

log = logging.getLogger("virnucpro.classifier")

#: Class names a pickled original classifier may reference; all become inert stand-ins.
PICKLED_CLASSES = (
    "__main__.MLPClassifier",
    "torch.nn.modules.linear.Linear",
    "torch.nn.modules.batchnorm.BatchNorm1d",
    "torch.nn.modules.dropout.Dropout",
    "torch.nn.modules.activation.ReLU",
)
_KEYS = (
    "hidden_layer.weight",
    "hidden_layer.bias",
    "bn1.weight",
    "bn1.bias",
    "bn1.running_mean",
    "bn1.running_var",
    "output_layer.weight",
    "output_layer.bias",
)


class MLPClassifier(nn.Module):
    """Same layers and names as the original, so converted state dicts map one to one."""

    def __init__(self, input_dim: int, hidden_dim: int, num_class: int = 2, eps: float = 1e-5) -> None:
        super().__init__()
        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim, eps=eps)
        self.dropout = nn.Dropout(0.5)
        self.output_layer = nn.Linear(hidden_dim, num_class)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.dropout(torch.relu(self.bn1(self.hidden_layer(x)))))

    @property
    def input_dim(self) -> int:
        return self.hidden_layer.in_features


def _from_tensors(tensors: dict[str, torch.Tensor], eps: float, source: Path) -> MLPClassifier:
    missing = [k for k in _KEYS if k not in tensors]
    if missing:
        raise ModelError(f"{source}: classifier lacks {', '.join(missing)}")
    hidden, input_dim = tensors["hidden_layer.weight"].shape
    num_class = tensors["output_layer.weight"].shape[0]
    model = MLPClassifier(input_dim, hidden, num_class, eps)
    state = {k: tensors[k].float() for k in _KEYS}
    state["bn1.num_batches_tracked"] = tensors.get("bn1.num_batches_tracked", torch.tensor(0))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{source}: classifier tensors do not fit: {str(exc).splitlines()[-1].strip()}") from None
    return model.eval()


def _tensors_of_pickled_module(root: PickledObject, source: Path) -> tuple[dict[str, torch.Tensor], float]:
    """Walk the stand-in tree of a pickled module: ``_parameters``/``_buffers`` per child in ``_modules``."""
    modules = root.get("_modules")
    if not isinstance(modules, dict):
        raise ModelError(f"{source}: not a pickled classifier module (no submodules)")
    tensors: dict[str, torch.Tensor] = {}
    eps = 1e-5
    for name, child in modules.items():
        if not isinstance(child, PickledObject):
            continue
        for group in ("_parameters", "_buffers"):
            for key, value in (child.get(group) or {}).items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{name}.{key}"] = value.detach()
        if name == "bn1":
            eps = float(child.get("eps", eps))
    return tensors, eps


def load_classifier(path: str | Path) -> MLPClassifier:
    """Load the original pickled ``.pth`` (safely) or a converted ``.safetensors``; returns the model in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: classifier file not found")
    if path.suffix == ".safetensors":
        try:
            tensors = load_file(str(path))
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable safetensors classifier ({exc})") from None
        return _from_tensors(tensors, float(json.loads(meta.get("virnucpro", "{}")).get("bn_eps", 1e-5)), path)
    obj = safe_torch_load(path, PICKLED_CLASSES, BASIC_GLOBALS, what="classifier")
    if isinstance(obj, PickledObject):
        tensors, eps = _tensors_of_pickled_module(obj, path)
    elif isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        tensors, eps = dict(obj), 1e-5  # a plain state dict
    else:
        raise ModelError(f"{path}: not a VirNucPro classifier (found {type(obj).__name__})")
    return _from_tensors(tensors, eps, path)


def convert_classifier(source: Path, target: Path) -> Path:
    """Write ``source``'s weights as safetensors (with BatchNorm eps in the metadata), atomically."""
    model = load_classifier(source)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {"virnucpro": json.dumps({"bn_eps": model.bn1.eps, "source": Path(source).name})}
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return Path(target)


def cli_convert(args: argparse.Namespace) -> int:
    """``virnucpro models convert``."""
    out = convert_classifier(args.input, args.output)
    log.info("wrote %s", out)
    return 0
