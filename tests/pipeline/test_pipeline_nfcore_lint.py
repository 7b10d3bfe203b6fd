"""nf-core's own pipeline lint tests, run offline through nf-core tools' Python API (no Nextflow here).

nf-core tools reads the pipeline config by calling `nextflow config -o json`; Nextflow cannot run in CI, so that one
function is replaced by :func:`pipeline_lint.static_config`, a static reading of nextflow.config and the files it
includes (literals as values, expressions as their text, profiles left out); the RO-Crate step of the template
rendering that files_unchanged does (an nf-co.re lookup) is switched off; actions_schema_validation gets the GitHub
workflow schema vendored by check-jsonschema instead of downloading it. Every lint test then runs on the real
tree. Each test's outcome is asserted: a lint test that fails here fails pytest; the ones that cannot run offline,
or are switched off in .nf-core.yml, are listed with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pipeline_lint as lint  # noqa: E402

nf_core = pytest.importorskip("nf_core", reason="nf-core tools are a test extra (pyproject.toml)")

ROOT = lint.ROOT

#: Lint tests that cannot give a meaningful result offline, and why (they are not run). None at present:
#: actions_schema_validation downloads the GitHub workflow schema from www.schemastore.org; it gets the copy that
#: check-jsonschema (a test extra) vendors from schemastore instead.
OFFLINE_IMPOSSIBLE: dict[str, str] = {}


class _VendoredSchemaResponse:
    """What requests.get would return for https://www.schemastore.org/github-workflow, from check-jsonschema."""

    status_code = 200

    def json(self):
        import importlib.resources
        import json

        vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
        return json.loads(vendor.joinpath("github-workflows.json").read_text())


def _get_github_workflow_schema(url, *args, **kwargs):
    assert "schemastore.org/github-workflow" in url, url
    return _VendoredSchemaResponse()


def run_lint(src: Path, dst: Path, release: bool, edit=None):
    """Lint a git snapshot (lint lists files with git) of the pipeline files of ``src``; ``edit(dst)`` may break it."""
    import nf_core.pipelines.lint as pl
    import nf_core.pipelines.rocrate
    import nf_core.utils

    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=src,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if (src / rel).is_file() and not rel.startswith(("tests/data/", "virnucpro/", ".venv")):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dst / rel)
    if edit is not None:
        edit(dst)
    subprocess.run(["git", "init", "-q", "-b", "master"], cwd=dst, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dst, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "snapshot"], cwd=dst, check=True)

    config = lint.static_config(dst)
    mp = pytest.MonkeyPatch()
    mp.setattr(nf_core.utils, "fetch_wf_config", lambda *a, **k: config)
    # files_unchanged renders a fresh template to compare with; its RO-Crate step looks the pipeline up on nf-co.re
    # (network). The RO-Crate feature is skipped in this pipeline (.nf-core.yml) and its file is not compared.
    mp.setattr(nf_core.pipelines.rocrate.ROCrate, "create_rocrate", lambda *a, **k: True)
    import nf_core.pipelines.lint.actions_schema_validation  # noqa: F401  (the package re-exports the function)

    asv = sys.modules["nf_core.pipelines.lint.actions_schema_validation"]
    mp.setattr(asv.requests, "get", _get_github_workflow_schema)
    mp.setenv("HIDE_PROGRESS", "1")
    try:
        obj = pl.PipelineLint(dst, release_mode=release, hide_progress=True)
        obj._load()
        obj.lint_tests = [t for t in obj.lint_tests if t not in OFFLINE_IMPOSSIBLE]
        obj._lint_pipeline()
    finally:
        mp.undo()
    return obj


@pytest.fixture(scope="module")
def lint_results(tmp_path_factory):
    """Every pipeline lint test, as `nf-core pipelines lint --release` runs them (the default set plus
    version_consistency and included_configs; release mode also requires a version without 'dev')."""
    return run_lint(ROOT, tmp_path_factory.mktemp("lint") / "virnucpro", True)


def test_lint_catches_a_broken_copy(tmp_path):
    """The offline lint is not a rubber stamp: deprecated params, a missing file and a stale image tag fail it."""
    def breakage(dst: Path):
        cfg = dst / "nextflow.config"
        text = cfg.read_text().replace("    validate_params            = true\n", "    validate_params            = true\n    max_cpus                   = 16\n")
        cfg.write_text(text.replace("process.container = 'ghcr.io/virnucpro/virnucpro:0.1.0'", "process.container = 'ghcr.io/virnucpro/virnucpro:0.0.9'"))
        (dst / "CHANGELOG.md").unlink()

    obj = run_lint(ROOT, tmp_path / "virnucpro", True, breakage)
    failed = _by_test(obj.failed)
    assert any("params.max_cpus" in m for m in failed.get("nextflow_config", [])), failed
    assert any("CHANGELOG.md" in m for m in failed.get("files_exist", [])), failed
    assert "version_consistency" in failed, failed


def _by_test(entries):
    out: dict[str, list[str]] = {}
    for test, msg in entries:
        out.setdefault(test, []).append(str(msg))
    return out


def test_no_lint_test_fails(lint_results):
    failed = _by_test(lint_results.failed)
    assert not failed, "\n".join(f"{t}: {m}" for t, ms in failed.items() for m in ms)


def test_every_lint_test_ran_or_is_listed(lint_results):
    """All of nf-core's pipeline lint tests (release set) ran, except the ones listed as impossible offline.
    Some report nothing when all is well (schema_description, merge_markers, actions_awsfulltest without the file)."""
    import nf_core.pipelines.lint as pl

    all_tests = set(pl.PipelineLint._get_all_lint_tests(lint_results.release_mode))
    assert set(lint_results.lint_tests) == all_tests - set(OFFLINE_IMPOSSIBLE)
    reported = {t for t, _ in lint_results.passed + lint_results.warned + lint_results.failed + lint_results.ignored}
    assert all_tests - set(OFFLINE_IMPOSSIBLE) - reported <= {"schema_description", "merge_markers", "actions_awsfulltest"}


def test_lint_tests_passed_on_real_checks(lint_results):
    """The tests that read the config, schema, modules and workflows report passes (not only silence)."""
    passed = _by_test(lint_results.passed)
    for test in ("nextflow_config", "files_exist", "files_unchanged", "schema_lint", "schema_params", "modules_json",
                 "modules_config", "base_config", "multiqc_config", "nf_test_content", "actions_schema_validation",
                 "version_consistency", "plugin_includes", "container_configs"):
        assert passed.get(test), f"{test}: no passing check ({_by_test(lint_results.warned).get(test)})"


if __name__ == "__main__":  # the per-test record: python tests/pipeline/test_pipeline_nfcore_lint.py
    import tempfile

    results = run_lint(ROOT, Path(tempfile.mkdtemp()) / "virnucpro", True)
    for kind in ("passed", "warned", "ignored", "failed"):
        for test, count in sorted({t: len(m) for t, m in _by_test(getattr(results, kind)).items()}.items()):
            print(f"{kind:8} {test} ({count})")
