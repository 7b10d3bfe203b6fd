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
              "modules", "conf", "assets", "containers", "bin", ".nf-core.yml", "modules.json"]


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


@pytest.fixture(scope="module")
def known_outputs():
    """What the folder-writing subcommands write (one real `virnucpro prepare` run per module)."""
    return lint.known_command_outputs()


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))


# ----------------------------------------------------------------------------------------------------------------
# the real pipeline is clean
# ----------------------------------------------------------------------------------------------------------------

def test_expected_files_exist():
    for m in MODULES:
        for rel in ("main.nf", "meta.yml", "environment.yml", "tests/main.nf.test"):
            assert (ROOT / "modules" / "local" / m / rel).is_file(), f"modules/local/{m}/{rel}"
    for rel in ["main.nf", "workflows/virnucpro.nf", "conf/base.config", "conf/modules.config", "conf/test.config",
                "conf/test_full.config", "nextflow.config", "nextflow_schema.json", "assets/schema_input.json",
                "assets/samplesheet.csv", "assets/samplesheet.tsv", "assets/multiqc_config.yml",
                "containers/Dockerfile", "containers/Dockerfile.cpu", "containers/virnucpro.def", "bin/virnucpro",
                "tests/default.nf.test", "tests/.nftignore", "nf-test.config", ".nf-core.yml", "modules.json",
                "LICENSE", "CHANGELOG.md", "CITATIONS.md", "modules/nf-core/multiqc/main.nf",
                "subworkflows/nf-core/utils_nfcore_pipeline/main.nf", "subworkflows/nf-core/utils_nfschema_plugin/main.nf",
                "subworkflows/nf-core/utils_nextflow_pipeline/main.nf",
                "subworkflows/local/utils_nfcore_virnucpro_pipeline/main.nf",
                ".github/workflows/nf-test.yml", ".github/workflows/containers.yml", ".github/workflows/static.yml",
                "docs/usage.md", "docs/output.md", "tests/run_nf_test.sh"]:
        assert (ROOT / rel).is_file(), rel
    assert not (ROOT / "tests" / "main.nf.test").exists(), "replaced by tests/default.nf.test"


@pytest.mark.parametrize("check", sorted(lint.CHECKS))
def test_pipeline_is_clean(check, known_outputs):
    findings = lint.check_outputs(ROOT, known_outputs) if check == "outputs" else lint.CHECKS[check](ROOT)
    assert not findings, _fmt(findings)


def test_reftrace_sees_every_module_process():
    import reftrace

    names = set()
    for m in MODULES:
        mod = lint.reftrace_module(ROOT / "modules" / "local" / m / "main.nf")
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


def test_run_nf_test_names_no_machine_path():
    text = (ROOT / "tests" / "run_nf_test.sh").read_text()
    assert "/work/" not in text and "/home/" not in text and "/Users/" not in text


def test_profiles_present():
    cfg = lint.lex(( ROOT / "nextflow.config").read_text())
    body = cfg[cfg.index("profiles {"):]
    for name in ["docker", "singularity", "apptainer", "conda", "gpu", "slurm", "awsbatch", "test", "test_full"]:
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


def test_versions_agree():
    """Image tags, manifest.version, .nf-core.yml and the Dockerfiles carry virnucpro.__version__."""
    from virnucpro import __version__

    assert lint.parse_ok(["--version"]) is None
    cfg = (ROOT / "nextflow.config").read_text()
    tags = re.findall(r"ghcr\.io/virnucpro/virnucpro:([\w.-]+)", cfg + (ROOT / "conf" / "test.config").read_text())
    assert sorted(set(tags)) == [__version__, f"{__version__}-cpu"], tags
    assert re.search(rf"version\s*=\s*'{re.escape(__version__)}'", cfg)
    assert f"version: {__version__}" in (ROOT / ".nf-core.yml").read_text()
    for f in ("containers/Dockerfile", "containers/Dockerfile.cpu"):
        assert f"ARG VERSION={__version__}" in (ROOT / f).read_text(), f
    assert f"releases/tag/{__version__}" in (ROOT / "assets" / "multiqc_config.yml").read_text()


# ----------------------------------------------------------------------------------------------------------------
# every checker catches a deliberately broken copy
# ----------------------------------------------------------------------------------------------------------------

def test_broken_copy_is_clean_before_breaking(pipeline_copy, known_outputs):
    findings = [f for name, check in lint.CHECKS.items() if name != "outputs" for f in check(pipeline_copy)]
    findings += lint.check_outputs(pipeline_copy, known_outputs)
    assert not findings, _fmt(findings)


@pytest.mark.parametrize(
    "rel,old,new,what",
    [
        ("modules/local/merge/main.nf", '    """\n    virnucpro merge', '    """\n    virnucpro merge }', "unbalanced brace in script is fine (string), so also drop the end"),
        ("modules/local/merge/main.nf", "    tuple val(meta), path(dna), path(protein)\n", "    tuple val(meta), path(dna), path(protein\n", "unclosed paren"),
        ("conf/base.config", "withLabel:process_low {", "withLabel:process_low {{", "extra brace in config"),
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


@pytest.mark.parametrize("directive", ["tag", "label", "conda"])
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
    _edit(path, '    conda "${moduleDir}/environment.yml"\n', '    conda "${moduleDir}/environment.yml"\n    container "ubuntu:latest"\n')
    msgs = [f.message for f in lint.check_processes(pipeline_copy) if "MERGE" in f.path]
    assert any("exactly one" in m for m in msgs) and any("nextflow.config" in m for m in msgs), msgs


def test_label_check_catches_unconfigured_label(pipeline_copy):
    _edit(pipeline_copy / "modules/local/merge/main.nf", "label 'process_low'", "label 'process_huge'")
    findings = lint.check_labels(pipeline_copy)
    assert any("process_huge" in f.message for f in findings), _fmt(findings)
    # and removing a configured label from base.config is caught too
    _edit(pipeline_copy / "conf/base.config", "withLabel: process_gpu", "withLabel: process_gpux")
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
        ("modules/local/summarize/main.nf", "--inputs ${fasta}", "--fasta ${fasta}", "--fasta"),
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
    _edit(pipeline_copy / "workflows/virnucpro.nf", "if (params.profile_batch && workflow", "if (params.profile_batches && workflow")
    findings = lint.check_schema(pipeline_copy)
    assert any("params.profile_batches" in f.message for f in findings), _fmt(findings)


def test_schema_check_catches_type_and_default_mismatch(pipeline_copy):
    _edit(pipeline_copy / "nextflow.config", "chunk_length               = 500", "chunk_length               = '500'")
    _edit(pipeline_copy / "nextflow.config", "predict_batch_size         = 256", "predict_batch_size         = 128")
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
    (pipeline_copy / "assets/samplesheet.csv").write_text("sample,fasta\nbad name,reads.txt\n")
    findings = [f for f in lint.check_schema(pipeline_copy) if "samplesheet" in f.path]
    assert len(findings) >= 2, _fmt(findings)


def test_include_check_catches_missing_file_and_name(pipeline_copy):
    wf = pipeline_copy / "workflows/virnucpro.nf"
    _edit(wf, "include { MERGE                  } from '../modules/local/merge/main'", "include { MERGE                  } from '../modules/local/merger/main'")
    _edit(wf, "include { PREDICT                } from '../modules/local/predict/main'", "include { PREDICTOR              } from '../modules/local/predict/main'")
    _edit(pipeline_copy / "nextflow.config", "id 'nf-schema@2.7.3'", "id 'nf-validation@1.1.3'")
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


# ----------------------------------------------------------------------------------------------------------------
# issue 9: each mutation that the old checks missed is caught (on a broken copy)
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "rel,old,new,needle",
    [
        # GPU passthrough commented out / accelerator removed / GPU on by default
        ("nextflow.config", "                containerOptions = {", "                // containerOptions = {\n                x = {", "containerOptions"),
        ("conf/base.config", "        accelerator = { 'gpu' in workflow.profile.tokenize(',') ? 1 : null }\n", "", "accelerator"),
        ("nextflow.config", "        docker.envWhitelist      = 'CUDA_VISIBLE_DEVICES'\n", "", "docker.envWhitelist"),
        ("nextflow.config", "docker.runOptions       = '-u $(id -u):$(id -g)'\n    }\n    arm64",
         "docker.runOptions       = '-u $(id -u):$(id -g) --gpus all'\n    }\n    arm64", "docker profile must not"),
        ("conf/modules.config", "task.accelerator ? '--device cuda' : '--device cpu'", "'--device cuda'", "--device"),
        ("nextflow.config", '"--gres=gpu:${task.accelerator.request}"', '"--gres=gpu:1"', "--gres"),
    ],
)
def test_gpu_contract_catches(pipeline_copy, rel, old, new, needle):
    _edit(pipeline_copy / rel, old, new)
    findings = lint.check_gpu_contract(pipeline_copy)
    assert any(needle in f.message for f in findings), _fmt(findings) or "no findings"


@pytest.mark.parametrize(
    "old,new,needle",
    [
        ("EMBED_DNA.out.h5.join(EMBED_PROTEIN.out.h5, failOnDuplicate: true, failOnMismatch: true)",
         "EMBED_DNA.out.h5.mix(EMBED_PROTEIN.out.h5)", "mixed"),
        ("groupKey(meta.id, meta.n_shards as int)", "groupKey(meta.id, 1)", "groupKey"),
        ("n_shards: kept.size()", "n_shards: pairs.size()", "kept.size()"),
        ("PREPARE.out.reads\n        .join(PREPARE.out.manifest", "PREPARE.out.reads\n        .combine(PREPARE.out.manifest", "join"),
    ],
)
def test_workflow_contract_catches(pipeline_copy, old, new, needle):
    _edit(pipeline_copy / "workflows/virnucpro.nf", old, new)
    findings = lint.check_workflow_contract(pipeline_copy)
    assert any(needle in f.message for f in findings), _fmt(findings) or "no findings"


@pytest.mark.parametrize(
    "rel,old,new,needle",
    [
        ("modules/local/embed_dna/main.nf", 'path("*.dna.h5"), emit: h5', 'path("*.dna.hdf5"), emit: h5', "*.dna.hdf5"),
        ("modules/local/summarize/main.nf", 'path("${meta.id}/virus_summary.tsv")', 'path("${meta.id}/virus_summaries.tsv")', "virus_summaries.tsv"),
        ("modules/local/prepare/main.nf", 'path("shards/manifest.json")', 'path("shards/manifest.yml")', "manifest.yml"),
        ("modules/local/merge/main.nf", "--output ${prefix}.features.h5", "--output ${prefix}.feature.h5", "*.features.h5"),
        ("modules/local/models_download/main.nf", 'path "models/checksums.sha256"', 'path "models/checksums.md5"', "checksums.md5"),
        ("modules/local/predict/main.nf", "> ${prefix}.frames.tsv\n", "> ${prefix}.frame.tsv\n", "stub"),
    ],
)
def test_output_check_catches(pipeline_copy, known_outputs, rel, old, new, needle):
    _edit(pipeline_copy / rel, old, new)
    findings = lint.check_outputs(pipeline_copy, known_outputs)
    assert any(needle in f.message for f in findings), _fmt(findings) or "no findings"


@pytest.mark.parametrize(
    "rel,old,new,needle",
    [
        ("nextflow.config", "// Load base.config by default for all pipelines\n", "def trace_timestamp = new java.util.Date()\n", "`def`"),
        ("conf/modules.config", "\n}\n", "\n}\n\nif (params.models_store) {\n    process.storeDir = params.models_store\n}\n", "`if`"),
        ("modules/local/merge/main.nf", "    def prefix = task.ext.prefix ?: \"${meta.id}_${String.format('%04d', meta.shard as int)}\"\n    \"\"\"\n    virnucpro merge",
         "    def prefix = params.prefix ?: \"${meta.id}\"\n    \"\"\"\n    virnucpro merge", "params used inside a module"),
        ("workflows/virnucpro.nf", "workflow VIRNUCPRO {", "println 'hello'\n\nworkflow VIRNUCPRO {", "top-level statement"),
        ("workflows/virnucpro.nf", "channel.value(file(dnabert", "Channel.value(file(dnabert", "Channel"),
        ("workflows/virnucpro.nf", ".map { _meta, tsv -> tsv })", ".map { it[1] })", "`it`"),
        ("workflows/virnucpro.nf", "include { PREPARE ", "import groovy.json.JsonSlurper\ninclude { PREPARE ", "import"),
    ],
)
def test_strict_syntax_catches(pipeline_copy, rel, old, new, needle):
    _edit(pipeline_copy / rel, old, new)
    findings = lint.check_strict_syntax(pipeline_copy)
    assert any(needle in f.message for f in findings), _fmt(findings) or "no findings"


def test_strict_syntax_allows_statements_in_closures(tmp_path):
    """`def`/`if` inside a config closure are legal; the same at top level are not."""
    root = tmp_path
    (root / "conf").mkdir()
    (root / "nextflow.config").write_text("process {\n    ext.args = {\n        def x = 1\n        if (x) { return '--a' }\n        '--b'\n    }\n}\n")
    assert not lint.check_strict_syntax(root)
    (root / "nextflow.config").write_text("process {\n    def x = 1\n}\n")
    assert lint.check_strict_syntax(root)


def test_meta_yml_check_catches_channel_mismatch(pipeline_copy):
    import yaml

    path = pipeline_copy / "modules/local/summarize/meta.yml"
    meta = yaml.safe_load(path.read_text())
    meta["output"].pop("regions")
    meta["input"][1] = {"chunk": meta["input"][1]["chunk_length"]}
    path.write_text(yaml.safe_dump(meta))
    msgs = [f.message for f in lint.check_meta_yml(pipeline_copy)]
    assert any("regions" in m for m in msgs) and any("chunk_length" in m for m in msgs), msgs


def test_samplesheet_rule_agrees_between_schema_and_code():
    """--input: nextflow_schema.json's pattern and isSamplesheet()/FASTA handling classify names alike."""
    schema = json.loads((ROOT / "nextflow_schema.json").read_text())
    pattern = re.compile(schema["$defs"]["input_output_options"]["properties"]["input"]["pattern"])
    code = (ROOT / "subworkflows/local/utils_nfcore_virnucpro_pipeline/main.nf").read_text()
    sheet_rx = re.search(r"==~ /(.+?)/\n", code).group(1).replace("\\\\", "\\")
    fasta_rx = re.search(r"fasta\.name\.replaceAll\(/(.+?)/, ''\)", code).group(1)
    for name, kind in [("s.csv", "sheet"), ("s.tsv", "sheet"), ("s.TSV", "sheet"), ("s.yml", "sheet"), ("s.json", "sheet"),
                       ("r.fa", "fasta"), ("r.fasta.gz", "fasta"), ("r.FNA", "fasta"), ("s.csv.gz", None), ("r.txt", None)]:
        is_sheet = re.match(sheet_rx.replace("(?i)", ""), name, re.I) is not None
        is_fasta = re.search(fasta_rx.replace("(?i)", ""), name, re.I) is not None
        assert (pattern.match(name) is not None) == (kind is not None), name
        assert is_sheet == (kind == "sheet") and (is_fasta or is_sheet) == (kind is not None), name


def test_multiqc_counts_from_virus_summary(tmp_path):
    """The awk step of SUMMARIZE counts calls and tiers of a real virus_summary.tsv (columns found by name)."""
    import subprocess

    text = (ROOT / "modules/local/summarize/main.nf").read_text()
    awk = re.search(r"    awk (-F.*?) \$\{meta\.id\}/virus_summary\.tsv", text, re.S).group(1)
    awk = awk.replace("\\\\", "\\").replace("\\$", "$").replace("'${meta.id}'", "'s1'")
    rows = [("r1", "virus", "high"), ("r2", "virus", "low"), ("r3", "others", "medium"), ("r4", "NA", "NA"), ("r5", "virus", "high")]
    summary = tmp_path / "virus_summary.tsv"
    header = ["read_id", "length", "windows", "windows_scored", "windows_viral", "fraction_viral", "mean_score",
              "max_score", "call", "confidence", "status", "regions"]
    summary.write_text("\t".join(header) + "\n" + "".join(
        "\t".join([r, "500", "1", "1", "1", "1", "0.9", "0.9", c, t, "ok", ""]) + "\n" for r, c, t in rows))
    out = subprocess.run(f"awk {awk} {summary}", shell=True, capture_output=True, text=True, check=True).stdout
    lines = [line.split("\t") for line in out.splitlines()]
    table = dict(zip(lines[0], lines[1]))
    assert table == {"Sample": "s1", "reads": "5", "virus": "3", "others": "1", "NA": "1",
                     "virus_high": "2", "virus_medium": "0", "virus_low": "1"}
    from virnucpro.summarize import SUMMARY_HEADER

    assert list(SUMMARY_HEADER[: len(header)]) == header  # the columns the awk step names exist in the real file (new ones are appended)


def test_module_environments_identical():
    """One conda environment for every virnucpro module (conda builds it once)."""
    texts = {m: (ROOT / "modules/local" / m / "environment.yml").read_text() for m in MODULES}
    assert len(set(texts.values())) == 1, texts.keys()


def test_version_flag_reaches_the_template_printer(pipeline_copy):
    """`--version`: main.nf hands params.version to PIPELINE_INITIALISATION, which hands it to the template's
    UTILS_NEXTFLOW_PIPELINE (prints '<manifest.name> v<manifest.version>' and exits); a broken hand-over is caught."""
    def wired(root: Path) -> bool:
        main = lint._strip_comments((root / "main.nf").read_text())
        init = re.search(r"PIPELINE_INITIALISATION\s*\(\s*([^,\s]+)", main)
        local = lint._strip_comments((root / "subworkflows/local/utils_nfcore_virnucpro_pipeline/main.nf").read_text())
        take = re.search(r"take:\s*(\w+)", local)
        call = re.search(r"UTILS_NEXTFLOW_PIPELINE\s*\(\s*(\w+)", local)
        printer = (root / "subworkflows/nf-core/utils_nextflow_pipeline/main.nf").read_text()
        return bool(init and init.group(1) == "params.version" and take and call and call.group(1) == take.group(1) == "version"
                    and re.search(r"if \(print_version\) \{\s*log\.info\(.*getWorkflowVersion\(\).*\)\s*System\.exit\(0\)", printer))

    assert wired(ROOT)
    _edit(pipeline_copy / "main.nf", "PIPELINE_INITIALISATION (\n        params.version,", "PIPELINE_INITIALISATION (\n        false,")
    assert not wired(pipeline_copy)


# the inputs of the MERGE and SUMMARIZE nf-tests before issue 9 (both staged two files under one name)
OLD_MODULE_TEST_INPUTS = {
    "merge": 'input[0] = [ [ id:\'test\', shard:1, n_shards:1 ], file("${projectDir}/tests/data/reference/input.fa", checkIfExists: true), file("${projectDir}/tests/data/reference/input.fa", checkIfExists: true) ]',
    "summarize": 'input[0] = [ [ id:\'test\' ], file("${projectDir}/tests/data/reference/input.fa", checkIfExists: true), [ file("${projectDir}/tests/data/reference/expected/len300/prediction_results.txt", checkIfExists: true), file("${projectDir}/tests/data/reference/expected/len500/prediction_results.txt", checkIfExists: true) ], [] ]\n                input[1] = 300',
}


@pytest.mark.parametrize("module", sorted(OLD_MODULE_TEST_INPUTS))
def test_staging_check_catches_the_old_module_tests(pipeline_copy, module):
    path = pipeline_copy / f"modules/local/{module}/tests/main.nf.test"
    text = path.read_text()
    start = text.index('                """\n', text.index("process {")) + len('                """\n')
    end = text.index('                """', start)
    path.write_text(text[:start] + "                " + OLD_MODULE_TEST_INPUTS[module] + "\n" + text[end:])
    findings = lint.check_test_staging(pipeline_copy)
    assert any(module.upper() in f.message for f in findings), _fmt(findings) or "no findings"


def test_same_named_fasta_files_are_staged_apart(pipeline_copy):
    """PREPARE's input/?/* keeps lane1/reads.fa and lane2/reads.fa apart; the old input/* is caught."""
    _edit(pipeline_copy / "modules/local/prepare/main.nf", "stageAs: 'input/?/*'", "stageAs: 'input/*'")
    findings = lint.check_test_staging(pipeline_copy)
    assert any("input/reads.fa" in f.message for f in findings), _fmt(findings) or "no findings"


def test_container_workflow_builds_the_images_the_config_names():
    """containers.yml builds containers/Dockerfile (CUDA and CPU) and pushes both to the registry path
    nextflow.config names, tagged <version> and <version>-cpu from virnucpro/__init__.py."""
    import yaml
    from virnucpro import __version__

    wf = yaml.safe_load((ROOT / ".github/workflows/containers.yml").read_text())
    job = wf["jobs"]["build"]
    variants = {(v["variant"], v["suffix"]) for v in job["strategy"]["matrix"]["include"]}
    assert variants == {("cuda", ""), ("cpu", "-cpu")}
    build = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("docker/build-push-action"))
    assert build["with"]["file"] == "containers/Dockerfile"
    assert "VARIANT=${{ matrix.variant }}" in build["with"]["build-args"]
    tags = build["with"]["tags"].splitlines()
    assert tags[0] == "${{ steps.version.outputs.image }}:${{ steps.version.outputs.version }}-${{ steps.version.outputs.sha }}${{ matrix.suffix }}"
    assert "github.event_name != 'pull_request'" in str(build["with"]["push"])
    # the image is named after the repository the workflow runs in; nextflow.config names this repository's
    image = "ghcr.io/" + re.search(r"homePage\s*=\s*'https://github\.com/([^']+)'", (ROOT / "nextflow.config").read_text()).group(1).lower()
    cfg = (ROOT / "nextflow.config").read_text()
    assert f"'{image}:{__version__}'" in cfg and f"'{image}:{__version__}-cpu'" in cfg
    version_step = next(s for s in job["steps"] if s.get("id") == "version")
    assert "virnucpro/__init__.py" in version_step["run"]
    import re as _re
    expr = _re.search(r"python3 -c \"(.+?)\"\)", version_step["run"]).group(1).replace('\\"', '"')
    import subprocess

    got = subprocess.run([sys.executable, "-c", expr], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert got == __version__


def test_images_carry_the_aws_cli_and_agree():
    """Both Dockerfiles install the AWS CLI (AWS Batch staging) and run the same steps."""
    def steps(path):
        text = (ROOT / path).read_text()
        return [re.sub(r"\s+", " ", r) for r in re.findall(r"(?ms)^RUN (.+?)(?=^\S|\Z)", text)]

    full, cpu = steps("containers/Dockerfile"), steps("containers/Dockerfile.cpu")
    for s in (full, cpu):
        assert any("awscli-exe-linux" in r and "aws --version" in r for r in s), s
        assert any("virnucpro --version" in r for r in s), s
    assert [r for r in full if "awscli" in r] == [r for r in cpu if "awscli" in r]


def test_path_check_catches_a_missing_test_input(pipeline_copy):
    _edit(pipeline_copy / "conf/test.config", '"${projectDir}/tests/data/reference/input.fa"', '"${projectDir}/assets/samplesheet_test.csv"')
    findings = lint.check_project_paths(pipeline_copy)
    assert any("samplesheet_test.csv" in f.message for f in findings), _fmt(findings) or "no findings"
