"""Issue 18, defects 3, 4, 6 and 7: GPU retries, GPUs of one machine, resource caps, Slurm and AWS Batch.

Read from the config files as Nextflow would take them (lexed by tests/pipeline/pipeline_lint.py, comments blanked), plus the
``--batch-scale`` option the retries use, run for real on the bundled tiny models.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from virnucpro.cli import main
from virnucpro.errors import EXIT_CODES, InputError
from virnucpro.h5io import read_matrix

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import pipeline_lint as lint  # noqa: E402

REF = ROOT / "tests" / "data" / "reference"


def _code(rel: str) -> str:
    return lint._code_without_comments((ROOT / rel).read_text())


def _block(text: str, head: str) -> str:
    """Body of the first `head { ... }` block (head a regular expression)."""
    m = re.search(head + r"\s*\{", text)
    assert m, f"no block {head}"
    return text[m.end(): lint.match_brace(text, m.end() - 1)]


def _profile(name: str) -> str:
    cfg = _code("nextflow.config")
    profiles = _block(cfg, r"(?m)^profiles")
    return _block(profiles, rf"(?m)^\s*{name}")


def _gpu_label() -> str:
    return _block(_code("conf/base.config"), r"withLabel\s*:\s*'?process_gpu'?")


def _retried_codes(closure: str) -> set[int]:
    m = re.search(r"errorStrategy\s*=\s*\{\s*task\.exitStatus\s+in\s+\((.*?)\)\s*\?\s*'retry'", closure, re.S)
    assert m, "no exit-status retry rule"
    codes: set[int] = set()
    for a, b in re.findall(r"\((\d+)\.\.(\d+)\)", m.group(1)):
        codes |= set(range(int(a), int(b) + 1))
    codes |= {int(c) for c in re.findall(r"(?<![.\d])(\d+)(?![.\d])", re.sub(r"\(\d+\.\.\d+\)", "", m.group(1)))}
    return codes


# ---- defect 3: GPU retries grow memory only, capped; the token budget halves -----------------------------------

def test_gpu_retries_grow_memory_only() -> None:
    label = _gpu_label()
    directives = {k: v.strip() for k, v in re.findall(r"(?m)^\s*(cpus|memory|time)\s*=\s*(.+)$", label)}
    assert set(directives) == {"cpus", "memory", "time"}
    assert "task.attempt" in directives["memory"]
    assert "task.attempt" not in directives["cpus"] and "task.attempt" not in directives["time"], directives


def test_resource_limits_cap_every_task_from_params() -> None:
    process = _block(_code("conf/base.config"), r"(?m)^process")
    limits = _block(process.replace("resourceLimits = [", "resourceLimits {").replace("\n    ]", "\n    }"), r"resourceLimits")
    assert re.search(r"cpus\s*:\s*params\.limit_cpus", limits)
    assert re.search(r"memory\s*:\s*params\.limit_memory", limits) and re.search(r"time\s*:\s*params\.limit_time", limits)
    # not inside a profile: base.config is loaded for every run (nextflow.config includes it before the profiles)
    assert re.search(r"includeConfig 'conf/base.config'", _code("nextflow.config"))


def test_retry_halves_the_token_budget_through_batch_scale() -> None:
    mods = _code("conf/modules.config")
    embed = _block(mods, r"withName\s*:\s*'EMBED_DNA\|EMBED_PROTEIN'")
    m = re.search(r'task\.attempt > 1 \? "--batch-scale \$\{1\.0 / \(1 << \(task\.attempt - 1\)\)\}" : \'\'', embed)
    assert m, "EMBED_* must pass --batch-scale 1/2^(attempt-1) on a retry"
    # what Groovy renders for attempts 2 and 3 is accepted by the CLI and halves, then quarters, the budget
    for attempt, scale in ((2, "0.5"), (3, "0.25")):
        assert lint.parse_ok(["embed-dna", "--input", "x.fa", "--output", "x.h5", "--batch-scale", scale]) is None
        assert float(scale) == 1.0 / (1 << (attempt - 1))


@pytest.mark.parametrize("given,expected", [("600", 300), (None, None)])
def test_batch_scale_scales_the_given_or_default_budget(tmp_path: Path, given: str | None, expected: int | None) -> None:
    fa = REF / "expected" / "len300" / "identified_nucleotide.fa"
    argv = ["embed-dna", "--model", str(REF / "models" / "dnabert"), "--input", str(fa), "--device", "cpu",
            "--precision", "fp32", "-q"] + (["--tokens-per-batch", given] if given else [])
    assert main([*argv, "--output", str(tmp_path / "full.h5")]) == 0
    assert main([*argv, "--output", str(tmp_path / "half.h5"), "--batch-scale", "0.5"]) == 0
    full, half = read_matrix(tmp_path / "full.h5"), read_matrix(tmp_path / "half.h5")
    want = expected if expected is not None else full.attrs["tokens_per_batch"] // 2
    assert half.attrs["tokens_per_batch"] == want
    assert half.ids == full.ids and abs(half.matrix - full.matrix).max() <= 1e-4


@pytest.mark.parametrize("scale", ["0", "1.5", "-0.5"])
def test_batch_scale_out_of_range_is_one_line(tmp_path: Path, scale: str, capsys: pytest.CaptureFixture[str]) -> None:
    fa = REF / "expected" / "len300" / "identified_protein.faa"
    argv = ["embed-protein", "--model", str(REF / "models" / "esm2_t2_tiny.pt"), "--input", str(fa), "--output",
            str(tmp_path / "o.h5"), "--device", "cpu", "--batch-scale", scale, "-q"]
    assert main(argv) == InputError.exit_code
    err = capsys.readouterr().err
    assert "--batch-scale must be in (0, 1]" in err and "Traceback" not in err


# ---- defect 6: GPU tasks retry only on out-of-memory / pre-emption exits ----------------------------------------

def test_gpu_tasks_never_retry_on_the_tools_own_error_codes() -> None:
    retried = _retried_codes(_gpu_label())
    own = {code for code in EXIT_CODES if 0 < code < 128}  # 1 internal, 2 input, 3 model, 4 NaN, 5 storage, 6 busy
    assert not (retried & own), f"a GPU task would be retried after exit {sorted(retried & own)}"
    assert {137, 143} <= retried, "out of memory (137) and SIGTERM / pre-emption (143) must be retried"


def test_test_profile_still_fits_a_laptop() -> None:
    test = _code("conf/test.config")
    assert re.search(r"limit_cpus\s*=\s*4", test) and re.search(r"limit_memory\s*=\s*'15\.GB'", test)


# ---- defect 4: several GPUs on one machine; profile names compared whole ---------------------------------------

def test_profile_checks_compare_whole_names() -> None:
    for path in [*ROOT.glob("*.config"), *ROOT.glob("conf/*.config"), *ROOT.glob("*.nf"), *ROOT.glob("workflows/*.nf"),
                 *ROOT.glob("subworkflows/local/*/main.nf")]:
        code = lint._code_without_comments(path.read_text())
        assert not re.search(r"workflow\.profile\.(contains|indexOf|startsWith|endsWith)\(", code), \
            f"{path.relative_to(ROOT)}: a substring test on workflow.profile ('nogpu' would count as 'gpu')"
    assert re.search(r"accelerator\s*=\s*\{\s*'gpu' in workflow\.profile\.tokenize\(','\)", _gpu_label())


def test_gpu_tasks_of_one_machine_never_share_a_gpu() -> None:
    gpu = _block(_profile("gpu"), r"withLabel\s*:\s*'process_gpu'")
    assert re.search(r"maxForks\s*=\s*1\b", gpu), "local executor: one GPU task at a time"
    for scheduler in ("slurm", "awsbatch"):
        label = _block(_profile(scheduler), r"withLabel\s*:\s*'process_gpu'")
        assert re.search(r"maxForks\s*=\s*0\b", label), f"{scheduler}: the scheduler places GPU tasks, no limit"
    # later profiles win: slurm and awsbatch are defined after gpu, so `-profile gpu,slurm` lifts the limit
    cfg = _code("nextflow.config")
    assert cfg.index("    gpu {") < cfg.index("    slurm {") and cfg.index("    gpu {") < cfg.index("    awsbatch {")
    usage = (ROOT / "docs/usage.md").read_text()
    assert "Several GPUs on one machine" in usage and "virnucpro run" in usage


# ---- defect 7: Slurm and AWS Batch -------------------------------------------------------------------------------

def test_slurm_gpu_tasks_keep_gres_and_go_to_the_gpu_partition() -> None:
    label = _block(_profile("slurm"), r"withLabel\s*:\s*'process_gpu'")
    assert re.search(r'clusterOptions\s*=\s*\{\s*task\.accelerator \? "--gres=gpu:\$\{task\.accelerator\.request\}"', label)
    assert re.search(r"queue\s*=\s*\{\s*params\.gpu_partition \?: null\s*\}", label)
    batch = _block(_profile("awsbatch"), r"withLabel\s*:\s*'process_gpu'")
    assert re.search(r"queue\s*=\s*\{\s*params\.gpu_partition \?: null\s*\}", batch)


def test_usage_has_worked_slurm_apptainer_and_aws_batch_examples() -> None:
    usage = (ROOT / "docs/usage.md").read_text()
    for heading in ("Laptop", "One GPU machine", "SLURM + Apptainer", "AWS Batch"):
        assert re.search(rf"(?m)^#+ .*{re.escape(heading)}", usage), f"docs/usage.md has no section {heading!r}"
    blocks = re.findall(r"```[a-z]*\n(.*?)```", usage, re.S)
    joined = "\n".join(blocks)
    assert re.search(r"-profile [^\n]*apptainer[^\n]*slurm|-profile [^\n]*slurm[^\n]*apptainer", joined.replace(",", " "))
    assert "--gpu_partition" in joined and "--gres" in usage
    assert re.search(r"-profile [^\n]*awsbatch", joined) and "aws.batch" in joined and "s3://" in joined
