"""Issue 18, defect 1: the model store is explicit workflow logic verified against checksums.sha256, never storeDir.

``storeDir`` cannot be combined with ``eval``/``env``/``stdout`` outputs (Nextflow's process reference; issue 5785):
26.04 aborts such a task and 25.10 downloads again on every run. The workflow instead
hands the store folder to MODELS_DOWNLOAD, whose ``virnucpro models download`` keeps what matches the store's
checksums.sha256, fetches only what is missing or changed and verifies the folder before the task succeeds.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from virnucpro.cli import main
from virnucpro.errors import ModelError
from virnucpro.models import hub

ROOT = Path(__file__).resolve().parents[2]


def _nextflow_sources() -> list[Path]:
    """The pipeline's own .nf/.config files: what git tracks (not a .venv's copy of the nf-core template)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z", "*.nf", "*.config"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    return sorted(ROOT / name for name in listed if name)


#: storeDir as a process directive (`storeDir 'x'`, `storeDir = ...`, `process.storeDir = ...`); `collectFile(storeDir:
#: ...)`, an operator option that only says where the collected file goes, is not the deprecated directive.
STORE_DIR_DIRECTIVE = re.compile(r"\bstoreDir\b(?!\s*:)")


def _code(text: str) -> str:
    """Text without // and /* */ comments (a comment naming storeDir is not a use of it)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"(?m)(^|[^:])//.*$", r"\1", text)


def test_no_process_uses_store_dir() -> None:
    sources = _nextflow_sources()
    assert any(p.name == "main.nf" for p in sources) and any(p.name == "base.config" for p in sources)
    users = [str(p.relative_to(ROOT)) for p in sources if STORE_DIR_DIRECTIVE.search(_code(p.read_text()))]
    assert users == [], f"storeDir is used in {users}: it breaks eval/env/stdout outputs and is deprecated upstream"


def test_store_dir_directive_is_recognised() -> None:
    assert STORE_DIR_DIRECTIVE.search("    storeDir \"${params.models_store}\"")
    assert STORE_DIR_DIRECTIVE.search("process.storeDir = params.models_store")
    assert not STORE_DIR_DIRECTIVE.search('.collectFile(storeDir: "${outdir}/pipeline_info", name: "v.yml")')


def test_models_download_process_takes_the_store_as_its_models_folder() -> None:
    text = _code((ROOT / "modules/local/models_download/main.nf").read_text())
    inputs = text.split("input:", 1)[1].split("output:", 1)[0]
    assert re.search(r"path\s+store\s*,\s*stageAs:\s*['\"]models['\"]", inputs), "the store is staged as the models folder"
    script = text.split("script:", 1)[1].split("stub:", 1)[0]
    assert "virnucpro models download" in script and "--dir models" in script


def test_workflow_hands_the_store_over_and_reads_the_models_from_it() -> None:
    wf = _code((ROOT / "workflows/virnucpro.nf").read_text())
    call = re.search(r"MODELS_DOWNLOAD\s*\(\s*chunk_length\s*,\s*store\s*\?:\s*\[\]\s*\)", wf)
    assert call, "MODELS_DOWNLOAD(chunk_length, store ?: []) : the store folder, or nothing"
    # with a store, every model comes from the store once the task verified it (its checksums output)
    for rel in ("dnabert-s", "${chunk_length}_model.pth", "esm2_t36_3B_UR50D.pt"):
        assert re.search(r"verified\.map\s*\{\s*_sums\s*->[^}]*file\(\"\$\{store\}/" + re.escape(rel), wf), rel
    assert re.search(r"def verified\s*=\s*MODELS_DOWNLOAD\.out\.checksums", wf)
    # nothing copies the models anywhere else (a publishDir into the store would copy files onto themselves)
    cfg = _code((ROOT / "conf/modules.config").read_text())
    block = cfg[cfg.index("withName: 'MODELS_DOWNLOAD'"):]
    block = block[: block.index("\n    }\n")]
    assert "enabled: false" in block


def _fake_network(monkeypatch: pytest.MonkeyPatch, calls: list[str]) -> None:
    def fake_fetch(url: str, dest: Path, **_: object) -> Path:
        calls.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(url.encode())
        return dest

    def fake_snapshot(repo_id: str, *, revision=None, local_dir=None) -> Path:
        calls.append(repo_id)
        local_dir.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "tokenizer.json", "model.safetensors"):
            (local_dir / name).write_text(name)
        return local_dir

    monkeypatch.setattr(hub, "fetch_url", fake_fetch)
    monkeypatch.setattr(hub, "hf_snapshot", fake_snapshot)


def test_second_download_into_the_same_folder_fetches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    _fake_network(monkeypatch, calls)
    folder = tmp_path / "store"
    argv = ["models", "download", "--dir", str(folder), "--chunk-length", "500", "-q"]
    assert main(argv) == 0 and calls
    calls.clear()
    assert main(argv) == 0
    assert calls == [], f"a complete, verified folder was fetched again: {calls}"


def test_download_replaces_a_file_that_no_longer_matches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    _fake_network(monkeypatch, calls)
    folder = tmp_path / "store"
    argv = ["models", "download", "--dir", str(folder), "--chunk-length", "300", "--skip-esm", "-q"]
    assert main(argv) == 0
    (folder / "300_model.pth").write_bytes(b"truncated")
    calls.clear()
    assert main(argv) == 0
    assert calls == [hub.CLASSIFIER_URL.format(length=300)]
    assert main(["models", "verify", "--dir", str(folder), "--chunk-length", "300", "--skip-esm", "-q"]) == 0


def test_verify_accepts_a_complete_folder_and_names_each_bad_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[str] = []
    _fake_network(monkeypatch, calls)
    folder = tmp_path / "m"
    assert main(["models", "download", "--dir", str(folder), "-q"]) == 0
    assert main(["models", "verify", "--dir", str(folder), "-q"]) == 0
    listed = hub.read_checksums(folder)
    assert listed["500_model.pth"] == hashlib.sha256((folder / "500_model.pth").read_bytes()).hexdigest()

    (folder / "500_model.pth").write_bytes(b"changed")
    (folder / f"{hub.DEFAULT_ESM_NAME}.pt").unlink()
    capsys.readouterr()
    assert main(["models", "verify", "--dir", str(folder), "-q"]) == ModelError.exit_code
    err = capsys.readouterr().err
    assert "500_model.pth: sha256 differs" in err and f"{hub.DEFAULT_ESM_NAME}.pt: missing" in err
    assert "Traceback" not in err
    # ESM-2 given separately: its absence is fine, the changed classifier of the other length is not needed
    (folder / "500_model.pth").unlink()
    assert main(["models", "verify", "--dir", str(folder), "--chunk-length", "300", "--skip-esm", "-q"]) == 0


def test_verify_refuses_a_folder_without_a_checksum_list(tmp_path: Path) -> None:
    (tmp_path / "300_model.pth").write_bytes(b"x")
    with pytest.raises(ModelError, match="checksums.sha256"):
        hub.verify_models(tmp_path, [300], esm=False)
    (tmp_path / "checksums.sha256").write_text("nothex  300_model.pth\n")
    with pytest.raises(ModelError, match="line 1"):
        hub.verify_models(tmp_path, [300], esm=False)
