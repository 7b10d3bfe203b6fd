"""Classifier loading: the original pickled module safely, a hostile pickle refused unexecuted, safetensors."""

from __future__ import annotations

import logging
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


def test_git_blob_id_is_git_hash_object(tmp_path: Path) -> None:
    from virnucpro.models.classifier import git_blob_id

    (tmp_path / "hello").write_text("hello\n")
    assert git_blob_id(tmp_path / "hello") == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object` of it
    (tmp_path / "empty").write_bytes(b"")
    assert git_blob_id(tmp_path / "empty") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


@pytest.fixture
def published_tiny(monkeypatch: pytest.MonkeyPatch) -> str:
    """Pretend the tiny test classifier is the published 500 bp model (the real files cannot be downloaded here)."""
    from virnucpro.models import classifier

    blob = classifier.git_blob_id(CLASSIFIER_PTH)
    monkeypatch.setattr(classifier, "PUBLISHED_CLASSIFIERS", {blob: ("500_model.pth", 500), **classifier.PUBLISHED_CLASSIFIERS})
    return blob


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


@pytest.fixture
def caplog_virnucpro(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    """caplog listens at the root logger; the CLI switches the package logger's propagation off."""
    monkeypatch.setattr(logging.getLogger("virnucpro"), "propagate", True)
    return caplog


def test_published_classifier_with_other_chunk_length_is_refused(published_tiny: str, caplog_virnucpro: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    from virnucpro.models.classifier import check_classifier, convert_classifier

    caplog = caplog_virnucpro
    with pytest.raises(ModelError, match=r"published 500_model.pth, trained on 500 bp windows, but the windows are 300 bp.*--allow-chunk-mismatch"):
        check_classifier(CLASSIFIER_PTH, 300)
    with caplog.at_level(logging.INFO, logger="virnucpro"):
        assert check_classifier(CLASSIFIER_PTH, 500) == "500_model.pth"
        assert not _warnings(caplog)
        assert check_classifier(CLASSIFIER_PTH, 300, allow_mismatch=True) == "500_model.pth"
        assert any("allowed by --allow-chunk-mismatch" in w for w in _warnings(caplog))
    # a converted copy is still recognised (its metadata records the source's blob id)
    converted = convert_classifier(CLASSIFIER_PTH, tmp_path / "c.safetensors")
    with pytest.raises(ModelError, match="500_model.pth"):
        check_classifier(converted, 300)


def test_unknown_classifier_gets_a_warning_naming_its_checksum(caplog_virnucpro: pytest.LogCaptureFixture) -> None:
    from virnucpro.checksum import file_sha256
    from virnucpro.models.classifier import check_classifier, git_blob_id

    caplog = caplog_virnucpro
    with caplog.at_level(logging.WARNING, logger="virnucpro"):
        assert check_classifier(CLASSIFIER_PTH, 300) is None
    (warning,) = _warnings(caplog)
    assert "not a published VirNucPro classifier" in warning
    assert git_blob_id(CLASSIFIER_PTH) in warning and file_sha256(CLASSIFIER_PTH) in warning


def test_predict_and_run_refuse_the_mismatch_unless_overridden(published_tiny: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import numpy as np

    from conftest import DNABERT_DIR, ESM_PT, INPUT_FA
    from virnucpro.h5io import write_matrix

    feats = write_matrix(tmp_path / "f.h5", ["a_chunk_1F1"], np.zeros((1, 128), dtype=np.float32), dataset="features")
    base = ["predict", "--features", str(feats), "--classifier", str(CLASSIFIER_PTH), "--output", str(tmp_path / "o.tsv")]
    assert main([*base, "--chunk-length", "300"]) == 3
    assert "--allow-chunk-mismatch" in capsys.readouterr().err and not (tmp_path / "o.tsv").exists()
    assert main([*base, "--chunk-length", "300", "--allow-chunk-mismatch"]) == 0 and (tmp_path / "o.tsv").exists()
    assert main([*base, "--chunk-length", "500"]) == 0
    assert main(base) == 0
    assert "no chunk length given to check it against" in capsys.readouterr().err
    run = ["run", str(INPUT_FA), "--outdir", str(tmp_path / "run"), "--chunk-length", "300", "--dnabert", str(DNABERT_DIR),
           "--esm", str(ESM_PT), "--classifier", str(CLASSIFIER_PTH), "--device", "cpu", "-q"]
    assert main(run) == 3
    assert "trained on 500 bp windows" in capsys.readouterr().err
    assert not (tmp_path / "run" / "work" / "prepare" / "reads.tsv").exists()  # refused before any work


def test_classifier_without_exactly_two_outputs_is_refused(tmp_path: Path) -> None:
    state = {k: v.clone() for k, v in load_classifier(CLASSIFIER_PTH).state_dict().items()}
    state["output_layer.weight"] = torch.randn(3, state["output_layer.weight"].shape[1])
    state["output_layer.bias"] = torch.randn(3)
    path = tmp_path / "three.pth"
    torch.save(state, path)
    with pytest.raises(ModelError, match="3 outputs; a VirNucPro classifier has exactly 2"):
        load_classifier(path)
    assert main(["models", "convert", "--input", str(path), "--output", str(tmp_path / "t.safetensors"), "-q"]) == 3
