"""Issue 18, defects 5 and 10: the right image for each task, immutable images of each commit, and CI that can go
green on GitHub (no unrecorded snapshots, every pre-commit hook present, module and subworkflow lint)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import pipeline_lint as lint  # noqa: E402


def _code(rel: str) -> str:
    return lint._code_without_comments((ROOT / rel).read_text())


def _param(name: str) -> str:
    m = re.search(rf"(?m)^\s*{name}\s*=\s*'([^']+)'", _code("nextflow.config"))
    assert m, name
    return m.group(1)


def _repository() -> str:
    m = re.search(r"homePage\s*=\s*'https://github\.com/([^']+)'", _code("nextflow.config"))
    assert m
    return m.group(1).lower()


# ---- defect 5: containers -----------------------------------------------------------------------------------------

def test_cpu_tasks_use_the_cpu_image_and_gpu_tasks_the_cuda_image_only_with_gpu() -> None:
    cfg = _code("nextflow.config")
    cpu, gpu = _param("container_cpu"), _param("container_gpu")
    version = re.search(r"(?m)^\s*version\s*=\s*'([^']+)'\s*$", cfg[cfg.index('manifest {'):]).group(1)
    assert cpu == f"ghcr.io/{_repository()}:{version}-cpu" and gpu == f"ghcr.io/{_repository()}:{version}"
    assert re.search(r"withLabel\s*:\s*'!process_gpu'\s*\{\s*container\s*=\s*params\.container_cpu\s*\}", cfg)
    assert re.search(r"withLabel\s*:\s*'process_gpu'\s*\{\s*container\s*=\s*\{\s*'gpu' in workflow\.profile\.tokenize\(','\)"
                     r"\s*\?\s*params\.container_gpu\s*:\s*params\.container_cpu\s*\}", cfg)
    # no profile or module brings the CUDA image back for every task
    for rel in ["conf/test.config", "conf/test_full.config", "conf/base.config", "conf/modules.config",
                *[str(p.relative_to(ROOT)) for p in ROOT.glob("modules/local/*/main.nf")]]:
        assert not re.search(r"container\s*=?\s*['\"]ghcr\.io", _code(rel)), rel


def test_images_pin_the_torch_of_the_tests() -> None:
    torch = re.search(r"(?m)^TORCH_VERSION \?= (\S+)", (ROOT / "Makefile").read_text()).group(1)
    for rel in ("containers/Dockerfile", "containers/Dockerfile.cpu"):
        assert re.search(rf"(?m)^ARG TORCH_VERSION={re.escape(torch)}$", (ROOT / rel).read_text()), rel
    definition = (ROOT / "containers/virnucpro.def").read_text()
    assert f'"torch=={torch}"' in definition
    # the CUDA wheels match the CUDA of the base image (cu128 <-> nvidia/cuda:12.8.x)
    for text in ((ROOT / "containers/Dockerfile").read_text(), definition):
        base = re.search(r"nvidia/cuda:(\d+)\.(\d+)\.\d+", text)
        wheels = re.search(r"whl/cu(\d+)", text)
        assert base and wheels and wheels.group(1) == base.group(1) + base.group(2)


def test_ci_pushes_immutable_tags_named_after_the_repository() -> None:
    wf = yaml.safe_load((ROOT / ".github/workflows/containers.yml").read_text())
    steps = wf["jobs"]["build"]["steps"]
    name_step = next(s for s in steps if s.get("id") == "version")
    assert "${{ github.repository }}" in str(name_step.get("env")) and "${REPOSITORY,,}" in name_step["run"]
    build = next(s for s in steps if "docker/build-push-action" in s.get("uses", ""))
    tags = [t for t in build["with"]["tags"].splitlines() if t.strip()]
    assert "steps.version.outputs.sha" in tags[0], "every build is tagged with its commit"
    assert "github.event_name == 'release'" in tags[1], "the plain version tag only for a release"
    assert "ghcr.io/virnucpro" not in (ROOT / ".github/workflows/containers.yml").read_text()


def test_pipeline_tests_on_github_use_the_image_of_the_same_commit() -> None:
    wf = yaml.safe_load((ROOT / ".github/workflows/nf-test.yml").read_text())
    steps = wf["jobs"]["nf-test"]["steps"]
    build = next(s for s in steps if "docker build" in s.get("run", ""))
    assert "${{ github.sha }}" in build["run"] and "VARIANT=cpu" in build["run"]
    names = " ".join(s.get("run", "") for s in steps)
    assert "VIRNUCPRO_CI_IMAGE=ci.local/virnucpro:${{ github.sha }}-cpu" in names
    assert wf["env"]["NXF_SYNTAX_PARSER"] == "v2", "main.nf's typed params need the strict syntax on 25.10"
    tests_cfg = _code("tests/nextflow.config")
    for label in ("'!process_gpu'", "'process_gpu'"):
        block = tests_cfg[tests_cfg.index(f"withLabel: {label}"):]
        assert re.match(rf"withLabel: {re.escape(label)} \{{\s*container = System\.getenv\('VIRNUCPRO_CI_IMAGE'\)", block)
    action = (ROOT / ".github/actions/nf-test/action.yml").read_text()
    assert "docker-archive://$VIRNUCPRO_CI_ARCHIVE" in action


# ---- defect 10: CI that can go green -----------------------------------------------------------------------------

def _nf_tests() -> list[Path]:
    return sorted([*ROOT.glob("tests/*.nf.test"), *ROOT.glob("modules/local/*/tests/*.nf.test"),
                   *ROOT.glob("subworkflows/local/*/tests/*.nf.test")])


def test_no_nf_test_depends_on_a_snapshot_that_was_never_recorded() -> None:
    """`nf-test test --ci` fails on a snapshot with no .snap file: assert on content, or commit the snapshot."""
    tests = _nf_tests()
    assert tests
    for test in tests:
        code = lint._code_without_comments(test.read_text())
        if "snapshot(" in code:
            assert test.with_name(test.name + ".snap").is_file(), f"{test.relative_to(ROOT)} asserts a snapshot never recorded"


def test_every_pre_commit_hook_script_exists() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    for repo in config["repos"]:
        if repo["repo"] != "local":
            continue
        for hook in repo["hooks"]:
            if hook.get("language") == "script":
                script = ROOT / hook["entry"].split()[0]
                assert script.is_file(), f"pre-commit hook {hook['id']}: {hook['entry']} does not exist"
                assert os.access(script, os.X_OK), f"{script} is not executable"


def test_block_pipeline_outdir_hook_refuses_run_output(tmp_path: Path) -> None:
    import subprocess

    script = ROOT / ".hooks/block_pipeline_outdir.sh"
    assert subprocess.run([str(script), "main.nf", "conf/base.config"], capture_output=True).returncode == 0
    bad = subprocess.run([str(script), "results/pipeline_info/execution_trace_x.txt"], capture_output=True, text=True)
    assert bad.returncode == 1 and "pipeline run" in bad.stderr


def test_modules_and_subworkflows_are_linted_too() -> None:
    lint_wf = yaml.safe_load((ROOT / ".github/workflows/lint-components.yml").read_text())
    runs = " ".join(s.get("run", "") for s in lint_wf["jobs"]["components"]["steps"])
    assert "modules lint --all" in runs and "subworkflows lint --all" in runs


def test_no_deprecated_syntax_in_local_code() -> None:
    """What the strict (v2) linter deprecates: the Channel type for factories, set/tap, shell sections, baseDir,
    the implicit closure parameter `it`."""
    files = [ROOT / "main.nf", *ROOT.glob("workflows/*.nf"), *ROOT.glob("subworkflows/local/*/main.nf"),
             *ROOT.glob("modules/local/*/main.nf"), ROOT / "nextflow.config", *ROOT.glob("conf/*.config")]
    for path in files:
        code = lint.lex(path.read_text())  # comments and strings blanked
        for pattern, what in ((r"\bChannel\s*\.", "Channel.<factory>"), (r"\.(set|tap)\s*\{", "set/tap"),
                              (r"(?m)^\s*shell\s*:", "shell:"), (r"\bbaseDir\b", "baseDir"),
                              (r"\{\s*it\b|[^\w.]it\.", "implicit `it`")):
            assert not re.search(pattern, code), f"{path.relative_to(ROOT)}: deprecated {what}"
