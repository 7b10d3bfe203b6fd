"""Static checks of the Nextflow pipeline layer (Nextflow itself is not needed).

Each check runs once on the real pipeline (must report nothing) and once on a deliberately broken copy in
tmp_path (must report the breakage), so a checker that silently accepts everything fails here.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pipeline_lint as lint  # noqa: E402

ROOT = lint.ROOT
MODULES = ["prepare", "embed_dna", "embed_protein", "merge", "predict", "summarize", "models_download", "profile"]
COPY_ITEMS = ["main.nf", "nextflow.config", "nextflow_schema.json", "nf-test.config", "workflows", "subworkflows",
              "modules", "conf", "assets", "containers", "bin"]


def _fmt(findings):
    return "\n".join(str(f) for f in findings)


@pytest.fixture()
def pipeline_copy(tmp_path: Path) -> Path:
    """A copy of the pipeline files (not the test data) to break."""
    dst = tmp_path / "pipeline"
    dst.mkdir()
    for item in COPY_ITEMS:
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, dst / item)
        elif src.is_file():
            shutil.copy2(src, dst / item)
    (dst / "tests").mkdir()
    shutil.copy2(ROOT / "tests" / "nextflow.config", dst / "tests" / "nextflow.config")
    return dst


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))


# ----------------------------------------------------------------------------------------------------------------
# the real pipeline is clean
# ----------------------------------------------------------------------------------------------------------------

def test_expected_files_exist():
    for m in MODULES:
        for rel in ("main.nf", "meta.yml", "tests/main.nf.test"):
            assert (ROOT / "modules" / "local" / m / rel).is_file(), f"modules/local/{m}/{rel}"
    for rel in ["main.nf", "workflows/virnucpro.nf", "conf/base.config", "conf/modules.config", "conf/test.config",
                "conf/test_full.config", "nextflow.config", "nextflow_schema.json", "assets/schema_input.json",
                "assets/samplesheet_test.csv", "containers/Dockerfile", "containers/virnucpro.def",
                "containers/environment.yml", "bin/virnucpro", "tests/main.nf.test", "nf-test.config",
                ".github/workflows/nf-test.yml", "docs/usage.md", "docs/output.md", "tests/run_nf_test.sh"]:
        assert (ROOT / rel).is_file(), rel


@pytest.mark.parametrize("check", sorted(lint.CHECKS))
def test_pipeline_is_clean(check):
    findings = lint.CHECKS[check](ROOT)
    assert not findings, _fmt(findings)


def test_reftrace_sees_every_module_process():
    import reftrace

    names = set()
    for m in MODULES:
        mod = reftrace.Module.from_file(str(ROOT / "modules" / "local" / m / "main.nf"))
        assert not isinstance(mod, reftrace.ParseError), mod
        names |= {p.name for p in mod.processes}
    assert names == {m.upper() for m in MODULES}


def test_every_cli_subcommand_is_wrapped():
    """One module per pipeline stage, each calling its own subcommand."""
    from virnucpro.cli import build_parser

    parser = build_parser()
    called = {}
    for p in lint.all_processes(ROOT):
        for cmd in lint.virnucpro_commands(p.sections["script"]):
            path = lint._command_path(parser, cmd.tokens[1:])
            if path:
                called[p.name] = " ".join(path)
    assert called == {
        "PREPARE": "prepare", "EMBED_DNA": "embed-dna", "EMBED_PROTEIN": "embed-protein", "MERGE": "merge",
        "PREDICT": "predict", "SUMMARIZE": "summarize", "MODELS_DOWNLOAD": "models download", "PROFILE": "profile",
    }


def test_gpu_label_configuration():
    base = (ROOT / "conf" / "base.config").read_text()
    block = base[base.index("withLabel: 'process_gpu'"):]
    assert re.search(r"accelerator\s*=\s*\{\s*params\.use_gpu \? 1 : null\s*\}", block)
    assert "'--gpus all'" in block and "'--nv'" in block and "workflow.containerEngine" in block
    assert "containerOptions" not in base[: base.index("withLabel: 'process_gpu'")], "containerOptions must be GPU-scoped"
    assert "(130..145) + 104" in base and "maxRetries    = 2" in base
    cfg = (ROOT / "nextflow.config").read_text()
    assert '--gres=gpu:${task.accelerator.request}' in cfg
    mods = (ROOT / "conf" / "modules.config").read_text()
    assert "task.attempt" in mods and "--tokens-per-batch" in mods


def test_profiles_present():
    cfg = lint.lex(( ROOT / "nextflow.config").read_text())
    body = cfg[cfg.index("profiles {"):]
    for name in ["docker", "singularity", "apptainer", "conda", "slurm", "awsbatch", "test", "test_full"]:
        assert re.search(rf"(?m)^\s*{name}\s*\{{", body), name


def test_caches_point_into_task_dir():
    for m in ["embed_dna", "embed_protein", "profile"]:
        text = (ROOT / "modules" / "local" / m / "main.nf").read_text()
        for var in ["HF_HOME", "TORCH_HOME", "TRITON_CACHE_DIR"]:
            assert f"export {var}=\\$PWD/" in text, (m, var)


def test_samplesheet_schema_rejects_bad_rows():
    import jsonschema

    schema = json.loads((ROOT / "assets" / "schema_input.json").read_text())
    v = jsonschema.Draft202012Validator(schema)
    assert not list(v.iter_errors([{"sample": "s1", "fasta": "a.fa.gz"}]))
    assert list(v.iter_errors([{"sample": "s 1", "fasta": "a.fa"}]))  # space in name
    assert list(v.iter_errors([{"sample": "s1", "fasta": "a.txt"}]))  # not FASTA
    assert list(v.iter_errors([{"sample": "s1"}]))  # fasta missing


def test_launcher():
    text = (ROOT / "bin" / "virnucpro").read_text()
    assert 'exec python3 -m virnucpro "$@"' in text
    assert (ROOT / "bin" / "virnucpro").stat().st_mode & 0o111


def test_version_parses():
    from virnucpro import __version__

    assert lint.parse_ok(["--version"]) is None
    assert f":{__version__}" in json.loads((ROOT / "nextflow_schema.json").read_text())["$defs"]["executor_options"]["properties"]["container"]["default"]


# ----------------------------------------------------------------------------------------------------------------
# every checker catches a deliberately broken copy
# ----------------------------------------------------------------------------------------------------------------

def test_broken_copy_is_clean_before_breaking(pipeline_copy):
    findings = lint.lint_all(pipeline_copy)
    assert not findings, _fmt(findings)


@pytest.mark.parametrize(
    "rel,old,new,what",
    [
        ("modules/local/merge/main.nf", '    """\n    virnucpro merge', '    """\n    virnucpro merge }', "unbalanced brace in script is fine (string), so also drop the end"),
        ("modules/local/merge/main.nf", "    tuple val(meta), path(dna), path(protein)\n", "    tuple val(meta), path(dna), path(protein\n", "unclosed paren"),
        ("conf/base.config", "withLabel: 'process_low' {", "withLabel: 'process_low' {{", "extra brace in config"),
        ("workflows/virnucpro.nf", "    emit:\n", "    emit:\n    x = 'unterminated\n", "unterminated string"),
    ],
)
def test_syntax_check_catches(pipeline_copy, rel, old, new, what):
    path = pipeline_copy / rel
    if what.startswith("unbalanced brace in script"):
        # a '}' inside the script string must NOT be reported; an unterminated triple-quoted string must be
        _edit(path, old, new)
        assert not lint.check_syntax(pipeline_copy), "brace inside a string reported as syntax error"
        text = path.read_text()
        last = text.rindex('"""')
        path.write_text(text[:last] + text[last + 3 :])
    else:
        _edit(path, old, new)
    findings = lint.check_syntax(pipeline_copy)
    assert any(f.path == rel for f in findings), f"{what}: {_fmt(findings)}"


def test_reftrace_alone_misses_unterminated_script(tmp_path):
    """Documents why the lexical check exists next to reftrace."""
    f = tmp_path / "bad.nf"
    f.write_text('process X {\n  script:\n  """\n  echo hi\n  \n}\n')
    reftrace_error = lint.reftrace_parse(f)
    with pytest.raises(lint.LexError):
        lint.lex(f.read_text())
    if reftrace_error is None:
        pytest.xfail("reftrace 0.6 accepts an unterminated triple-quoted string (caught by the lexical check)")


@pytest.mark.parametrize("directive", ["tag", "label", "container", "conda"])
def test_process_check_catches_missing_directive(pipeline_copy, directive):
    path = pipeline_copy / "modules/local/predict/main.nf"
    text = path.read_text()
    path.write_text(re.sub(rf"(?m)^    {directive} .*\n", "", text, count=1))
    findings = lint.check_processes(pipeline_copy)
    assert any("PREDICT" in f.path and directive in f.message for f in findings), _fmt(findings)


def test_process_check_catches_missing_stub(pipeline_copy):
    path = pipeline_copy / "modules/local/summarize/main.nf"
    text = path.read_text()
    path.write_text(text[: text.index("    stub:")] + "}\n")
    findings = lint.check_processes(pipeline_copy)
    assert any("SUMMARIZE" in f.path and "stub" in f.message for f in findings), _fmt(findings)


def test_process_check_catches_two_commands_and_bad_container(pipeline_copy):
    path = pipeline_copy / "modules/local/merge/main.nf"
    _edit(path, "    virnucpro merge \\\\\n", "    virnucpro predict --features a --classifier b --output c\n    virnucpro merge \\\\\n")
    _edit(path, 'container "${params.container}"', 'container "ubuntu:latest"')
    msgs = [f.message for f in lint.check_processes(pipeline_copy) if "MERGE" in f.path]
    assert any("exactly one" in m for m in msgs) and any("params.container" in m for m in msgs), msgs


def test_label_check_catches_unconfigured_label(pipeline_copy):
    _edit(pipeline_copy / "modules/local/merge/main.nf", "label 'process_low'", "label 'process_huge'")
    findings = lint.check_labels(pipeline_copy)
    assert any("process_huge" in f.message for f in findings), _fmt(findings)
    # and removing a configured label from base.config is caught too
    _edit(pipeline_copy / "conf/base.config", "withLabel: 'process_gpu'", "withLabel: 'process_gpux'")
    assert any("process_gpu'" in f.message for f in lint.check_labels(pipeline_copy))


@pytest.mark.parametrize(
    "rel,old,new,needle",
    [
        ("modules/local/merge/main.nf", "--protein ${protein}", "--proteins ${protein}", "--proteins"),  # unknown option
        ("modules/local/predict/main.nf", "--classifier ${classifier} \\\\\n", "", "--classifier"),  # required missing
        ("modules/local/embed_dna/main.nf", "virnucpro embed-dna", "virnucpro embed-nucleotide", "embed-nucleotide"),
        ("modules/local/prepare/main.nf", "--outdir shards", "--out-dir shards", "--out-dir"),
        ("conf/modules.config", '"--store-dtype ${params.store_dtype}"', '"--store-dtype bfloat16"', "bfloat16"),  # bad choice
        ("conf/modules.config", '"--batch-size ${params.predict_batch_size} --device cpu"', '"--batch ${params.predict_batch_size} --device cpu"', "--batch"),
        ("conf/modules.config", '"--tokens-per-shard ${params.shard_tokens}"', '"--shard-tokens ${params.shard_tokens}"', "--shard-tokens"),
    ],
)
def test_cli_check_catches(pipeline_copy, rel, old, new, needle):
    _edit(pipeline_copy / rel, old, new)
    findings = lint.check_cli_commands(pipeline_copy)
    assert any(needle in str(f) for f in findings), _fmt(findings) or "no findings"


def test_cli_check_types_values(pipeline_copy):
    """An int option fed a non-number literal is rejected (values are checked, not only option names)."""
    _edit(pipeline_copy / "modules/local/models_download/main.nf", "--chunk-length ${chunk_length}", "--chunk-length 400")
    findings = lint.check_cli_commands(pipeline_copy)
    assert any("400" in str(f) for f in findings), _fmt(findings)


def test_schema_check_catches_undocumented_param(pipeline_copy):
    _edit(pipeline_copy / "workflows/virnucpro.nf", "params.profile_batch && params.use_gpu", "params.profile_batch && params.use_gpus")
    findings = lint.check_schema(pipeline_copy)
    assert any("params.use_gpus" in f.message for f in findings), _fmt(findings)


def test_schema_check_catches_type_and_default_mismatch(pipeline_copy):
    _edit(pipeline_copy / "nextflow.config", "chunk_length             = 500", "chunk_length             = '500'")
    _edit(pipeline_copy / "nextflow.config", "predict_batch_size       = 256", "predict_batch_size       = 128")
    msgs = [f.message for f in lint.check_schema(pipeline_copy)]
    assert any("chunk_length" in m and "type" in m for m in msgs), msgs
    assert any("predict_batch_size" in m and "default" in m for m in msgs), msgs


def test_schema_check_catches_invalid_schema(pipeline_copy):
    f = pipeline_copy / "nextflow_schema.json"
    schema = json.loads(f.read_text())
    schema["$defs"]["input_output_options"]["properties"]["chunk_length"]["type"] = "int"  # not a JSON type
    f.write_text(json.dumps(schema))
    f2 = pipeline_copy / "assets/schema_input.json"
    s2 = json.loads(f2.read_text())
    s2["$schema"] = "http://json-schema.org/draft-07/schema"
    f2.write_text(json.dumps(s2))
    findings = lint.check_schema(pipeline_copy)
    assert any(f.path == "nextflow_schema.json" and "invalid JSON Schema" in f.message for f in findings), _fmt(findings)
    assert any(f.path == "assets/schema_input.json" and "2020-12" in f.message for f in findings), _fmt(findings)


def test_schema_check_catches_bad_samplesheet(pipeline_copy):
    (pipeline_copy / "assets/samplesheet_test.csv").write_text("sample,fasta\nbad name,reads.txt\n")
    findings = [f for f in lint.check_schema(pipeline_copy) if "samplesheet" in f.path]
    assert len(findings) >= 2, _fmt(findings)


def test_include_check_catches_missing_file_and_name(pipeline_copy):
    wf = pipeline_copy / "workflows/virnucpro.nf"
    _edit(wf, "include { MERGE           } from '../modules/local/merge/main'", "include { MERGE           } from '../modules/local/merger/main'")
    _edit(wf, "include { PREDICT         } from '../modules/local/predict/main'", "include { PREDICTOR       } from '../modules/local/predict/main'")
    _edit(pipeline_copy / "nextflow.config", "id 'nf-schema@2.3.0'", "id 'nf-validation@1.1.3'")
    msgs = [str(f) for f in lint.check_includes(pipeline_copy)]
    assert any("merger" in m and "does not exist" in m for m in msgs), msgs
    assert any("'PREDICTOR' is not defined" in m for m in msgs), msgs
    assert any("plugin/nf-schema" in m for m in msgs), msgs


def test_layout_check_catches_missing_stub_test_and_gpu_tag(pipeline_copy):
    t = pipeline_copy / "modules/local/embed_dna/tests/main.nf.test"
    _edit(t, 'options "-stub"', "")
    _edit(t, 'tag "gpu"', "")
    (pipeline_copy / "modules/local/merge/meta.yml").write_text("name: [unclosed\n")
    _edit(pipeline_copy / "conf/modules.config", "withName: 'MERGE'", "withName: 'MERGER'")
    msgs = [str(f) for f in lint.check_module_layout(pipeline_copy)]
    assert any("embed_dna" in m and "-stub" in m for m in msgs), msgs
    assert any("embed_dna" in m and "'gpu'" in m for m in msgs), msgs
    assert any("merge/meta.yml" in m for m in msgs), msgs
    assert any("MERGER" in m for m in msgs), msgs


# ----------------------------------------------------------------------------------------------------------------
# lexer unit checks
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "src",
    [
        'def a = "x ${ b ? \'}\' : "{" } y"\n',
        "def r = f.name =~ /_(\\d+)\\.nuc\\.fa$/\n",
        "x = 4 / 2 // comment with ' quote\n",
        "/* { */ y = '''\n{\n'''\n",
    ],
)
def test_lexer_accepts(src):
    lint.lex(src)


@pytest.mark.parametrize("src", ['a = "${ b "\n', "a = { [ }\n", "/* open\n", "a = 'x\n'\n", 'x = """\n'])
def test_lexer_rejects(src):
    with pytest.raises(lint.LexError):
        lint.lex(src)
