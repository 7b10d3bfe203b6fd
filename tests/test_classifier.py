"""Classifier loading: the original pickled module safely, a hostile pickle refused unexecuted, safetensors."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from conftest import CLASSIFIER_PTH
from virnucpro.cli import main
from virnucpro.errors import ModelError
from virnucpro.models.classifier import load_classifier


def test_loads_original_pickled_module_in_eval_mode() -> None:
    model = load_classifier(CLASSIFIER_PTH)
    assert not model.training and model.input_dim == 128
    assert model.bn1.running_var.min() > 0 and int(model.bn1.num_batches_tracked) == 4242


class _Plain:
    pass


class _Evil:
    def __reduce__(self):  # executed by an unrestricted unpickler
        return (Path.touch, (Path(self.target),))  # type: ignore[attr-defined]


def test_hostile_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = _Evil()
    evil.target = str(marker)  # type: ignore[attr-defined]
    path = tmp_path / "evil.pth"
    torch.save({"model": evil}, path)
    with pytest.raises(ModelError, match="refused to load") as err:
        load_classifier(path)
    assert "not allowed" in str(err.value)
    assert not marker.exists()


def test_module_with_unexpected_class_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"weights": _Plain()}, path)  # harmless, but not on the allow-list
    with pytest.raises(ModelError, match="_Plain"):
        load_classifier(path)


def test_convert_to_safetensors_gives_identical_scores(tmp_path: Path) -> None:
    out = tmp_path / "cls.safetensors"
    assert main(["models", "convert", "--input", str(CLASSIFIER_PTH), "--output", str(out), "-q"]) == 0
    a, b = load_classifier(CLASSIFIER_PTH), load_classifier(out)
    x = torch.randn(16, 128)
    with torch.inference_mode():
        assert torch.equal(a(x), b(x))
    assert b.bn1.eps == a.bn1.eps


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_classifier(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError):
        load_classifier(junk)
    plain = tmp_path / "plain.pth"
    plain.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ModelError):
        load_classifier(plain)
