"""Cheap up-front checks of the three models of a run, so a wrong path or format fails in seconds, before any work.

``virnucpro run`` would otherwise learn that ``--esm`` is missing only after the DNA embedding finished, or that
``--classifier`` is a folder after both embedding stages. These checks read only what is cheap: DNABERT-S's
``config.json`` and ``tokenizer.json`` and the names and shapes of its weights (the safetensors header, or the pickle
of a zip checkpoint memory-mapped, so no tensor data is read); the ESM-2 checkpoint's ``cfg`` and weight shapes the
same way; the classifier itself (it is tiny). Each is compared with the architecture its configuration implies, and
the classifier's input width with DNABERT-S hidden size + ESM-2 embedding size. The readers are the loaders' own
(:mod:`~virnucpro.models.dnabert`, :mod:`~virnucpro.models.esm`, :mod:`~virnucpro.models.classifier`), so a check
and a load can never disagree about what a valid file is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from virnucpro.errors import ModelError
from virnucpro.models import dnabert, esm
from virnucpro.models.classifier import load_classifier
from virnucpro.models.layers import check_state_dict
from virnucpro.models.checkpoint import load_esm_pickle


@dataclass(frozen=True)
class _Shape:
    """Stands in for a tensor where only ``.shape`` is compared (nothing is read from the file)."""

    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelCheck:
    """What the checks learnt: resolved locations and the widths that must fit together."""

    dnabert_folder: Path
    dnabert_dim: int
    esm_checkpoint: Path
    esm_dim: int
    classifier: Path
    classifier_input_dim: int


def _safetensors_shapes(path: Path) -> dict[str, _Shape]:
    """Names and shapes from a safetensors header (the tensor data is not read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return {key: _Shape(tuple(fh.get_slice(key).get_shape())) for key in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable safetensors file ({exc})") from None


def check_dnabert(spec: str) -> tuple[Path, int]:
    """Validate a DNABERT-S folder (or hub id) without building the model; returns (folder, hidden size)."""
    folder = dnabert.resolve_folder(spec)
    config_path, tokenizer_path, weights_path = dnabert.model_files(folder)
    config = dnabert.DnaBertConfig.from_json(config_path)
    dnabert.DnaTokenizer(tokenizer_path, config.vocab_size)
    if weights_path.name.endswith(".safetensors"):
        found: Mapping[str, object] = _safetensors_shapes(weights_path)
    else:
        found = dnabert.load_weights(weights_path)  # memory-mapped zip checkpoint: shapes without reading the data
    dnabert.map_weights(found, config, str(weights_path))
    return folder, config.hidden_size


def check_esm(spec: str) -> tuple[Path, int]:
    """Validate an ESM-2 checkpoint (path or fair-esm name) without building the model; returns (path, embed dim)."""
    path = esm.resolve_checkpoint(spec)
    if path.is_dir():
        raise ModelError(f"{path}: is a folder; --esm needs the ESM-2 checkpoint file (.pt) or a fair-esm model name")
    checkpoint = load_esm_pickle(path)
    config = esm.read_config(checkpoint, str(path))
    check_state_dict(config.expected_shapes(), esm.read_state(checkpoint, str(path)), str(path))
    return path, config.embed_dim


def _classifier_file(path: Path) -> None:
    if path.is_dir():
        raise ModelError(f"{path}: is a folder; --classifier needs the classifier file (.pth or .safetensors)")
    if not path.is_file():
        raise ModelError(f"{path}: classifier file not found")


def check_classifier_width(path: str | Path, dna_dim: int, esm_dim: int) -> int:
    """Load the classifier (tiny) and check it takes exactly the two models' features; returns its input width."""
    path = Path(path)
    _classifier_file(path)
    model = load_classifier(path)
    if model.input_dim != dna_dim + esm_dim:
        raise ModelError(
            f"{path}: classifier takes {model.input_dim} features, but DNABERT-S ({dna_dim}) + ESM-2 ({esm_dim}) give "
            f"{dna_dim + esm_dim}: these models do not belong together"
        )
    return model.input_dim


def check_models(dnabert_spec: str, esm_spec: str, classifier: str | Path) -> ModelCheck:
    """All three checks. The classifier's presence is checked first (a hub name may download gigabytes before it
    would otherwise be looked at); its width last, since it needs both models' sizes."""
    _classifier_file(Path(classifier))
    folder, dna_dim = check_dnabert(dnabert_spec)
    checkpoint, esm_dim = check_esm(esm_spec)
    width = check_classifier_width(classifier, dna_dim, esm_dim)
    return ModelCheck(folder, dna_dim, checkpoint, esm_dim, Path(classifier), width)
