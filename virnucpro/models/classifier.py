"""The VirNucPro MLP classifier: Linear → BatchNorm1d → ReLU → Dropout → Linear, scored with softmax in eval mode.

The published ``300_model.pth`` / ``500_model.pth`` are whole pickled ``__main__.MLPClassifier`` modules. We read them
through torch's restricted unpickler with inert stand-ins for exactly the classes such a file holds (see
:mod:`virnucpro.models.checkpoint`), then take the tensors out: no class from the file is ever imported or run.
``virnucpro models convert`` writes the same weights as safetensors, which loads faster and needs no unpickling.

Each published classifier was trained on windows of one chunk length; scoring 300 bp windows with the 500 bp model
(or the reverse) runs without any error and quietly gives poor calls. :func:`check_classifier` therefore identifies
the published files by their git blob id in the original repository and refuses the wrong pairing unless the user
overrides it; any other classifier gets a warning naming its checksum, so a run's log says which model it used.
A classifier must have exactly two outputs (others, virus): every later table depends on that.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from virnucpro.atomic import atomic_path
from virnucpro.checksum import file_sha256
from virnucpro.errors import ModelError
from virnucpro.models.checkpoint import BASIC_GLOBALS, NEEDS_CODE, PickledObject, safe_torch_load

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


#: The published classifiers: git blob id (``git hash-object FILE``) in the original repository at commit 0f93f27 →
#: (file name, chunk length it was trained for).
PUBLISHED_CLASSIFIERS: dict[str, tuple[str, int]] = {
    "a0b5b85e7c1e44f00cde146d091beb82b2c8e855": ("300_model.pth", 300),
    "fc35d5ef9f1f4564eea7036f34f4f8ec6000d33d": ("500_model.pth", 500),
}
NUM_CLASSES = 2
_BLOCK = 1 << 22


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
    if num_class != NUM_CLASSES:
        raise ModelError(
            f"{source}: classifier has {num_class} outputs; a VirNucPro classifier has exactly {NUM_CLASSES}"
            " (others, virus)"
        )
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
    try:
        with warnings.catch_warnings():  # torch's note on the pickle protocol of a file it then refuses anyway
            warnings.simplefilter("ignore", UserWarning)
            obj = safe_torch_load(path, PICKLED_CLASSES, BASIC_GLOBALS, what="classifier")
    except ModelError as exc:
        if NEEDS_CODE not in str(exc):  # a named disallowed class, or not a checkpoint at all: said as it is
            raise
        # say what such a file usually is and the safe way out
        raise ModelError(
            f"{path}: refused to load classifier: a whole pickled model in a format the safe loader cannot read "
            "without running code from the file (pickle.dump, or torch.save before PyTorch 1.6; the published "
            "300_model.pth/500_model.pth are not such files). Where you trust it, save only its weights, "
            "torch.save(model.state_dict(), 'classifier.pth'), and pass that file"
        ) from None
    if isinstance(obj, PickledObject):
        tensors, eps = _tensors_of_pickled_module(obj, path)
    elif isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        tensors, eps = dict(obj), 1e-5  # a plain state dict
    else:
        raise ModelError(f"{path}: not a VirNucPro classifier (found {type(obj).__name__})")
    return _from_tensors(tensors, eps, path)


def git_blob_id(path: str | Path) -> str:
    """``git hash-object`` of a file: SHA-1 of ``"blob <size>\\0"`` followed by the content (streamed)."""
    path = Path(path)
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _safetensors_source_blob(path: Path) -> str | None:
    """The blob id of the .pth a safetensors file was converted from (recorded by :func:`convert_classifier`)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {}).get("virnucpro", "{}"))
    except (SafetensorError, OSError, ValueError):
        return None
    return meta.get("source_git_blob") if isinstance(meta, dict) else None


def identify_classifier(path: str | Path) -> tuple[str, str | None, int | None]:
    """``(git blob id, published name or None, its chunk length or None)``; a converted file counts as its source."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: classifier file not found")
    blob = git_blob_id(path)
    key = blob if blob in PUBLISHED_CLASSIFIERS else _safetensors_source_blob(path) if path.suffix == ".safetensors" else None
    if key in PUBLISHED_CLASSIFIERS:
        name, chunk = PUBLISHED_CLASSIFIERS[key]
        return blob, name, chunk
    return blob, None, None


def check_classifier(path: str | Path, chunk_length: int | None, allow_mismatch: bool = False) -> str | None:
    """Guard the classifier/chunk-length pairing; returns the published name, or None for another classifier.

    A published classifier used with the other chunk length raises :class:`ModelError` unless ``allow_mismatch``
    (then a warning); an unknown classifier, or no chunk length to check against, gets a warning.
    """
    path = Path(path)
    blob, name, trained = identify_classifier(path)
    if name is None:
        log.warning(
            "%s is not a published VirNucPro classifier (git blob %s, sha256 %s): its chunk length cannot be checked",
            path, blob, file_sha256(path),
        )
        return None
    if chunk_length is None:
        log.warning("%s is the published %s (trained on %d bp windows); no chunk length given to check it against", path, name, trained)
    elif chunk_length != trained:
        message = (
            f"{path} is the published {name}, trained on {trained} bp windows, but the windows are {chunk_length} bp"
        )
        if not allow_mismatch:
            raise ModelError(
                f"{message}: use {chunk_length}_model.pth or --chunk-length {trained}"
                " (--allow-chunk-mismatch to run anyway)"
            )
        log.warning("%s (allowed by --allow-chunk-mismatch: expect poorer calls)", message)
    else:
        log.info("classifier %s is the published %s (git blob %s)", path, name, blob)
    return name


def convert_classifier(source: Path, target: Path) -> Path:
    """Write ``source``'s weights as safetensors (with BatchNorm eps and the source's git blob id in the metadata)."""
    model = load_classifier(source)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {"virnucpro": json.dumps({"bn_eps": model.bn1.eps, "source": Path(source).name, "source_git_blob": git_blob_id(source)})}
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return Path(target)


def cli_convert(args: argparse.Namespace) -> int:
    """``virnucpro models convert``."""
    out = convert_classifier(args.input, args.output)
    log.info("wrote %s", out)
    return 0
