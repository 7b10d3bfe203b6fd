"""Every module's script and stub rendered as Nextflow would (default and gpu profiles) and checked against the CLI;
the stub chain run for real (bash) with its outputs collected by the declared globs; published files vs docs.
Contracts: nextflow_schema.json params ↔ conf/modules.config ↔ `virnucpro <cmd>` options."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

import nfmodel
import wiring
from support import MODELS, REF, ROOT, SAMPLE, pipeline_params
from groovy import evaluate, parse
from virnucpro.cli import build_parser

MODULES = sorted(p.name for p in (ROOT / "modules" / "local").iterdir() if (p / "main.nf").is_file())


def _inputs(mod: nfmodel.Module, tmp: Path, chunk: int = 500) -> list:
    """Plausible inputs for one task of ``mod``, by input name (an unknown input name is an error to fix here)."""
    meta = {"id": SAMPLE, "shard": 1, "n_shards": 2}
    tmp.mkdir(parents=True, exist_ok=True)
    files = {
        "fasta": REF / "input.fa", "model": MODELS / "dnabert", "dna": tmp / "s1_0001.dna.h5",
        "protein": tmp / "s1_0001.protein.h5", "features": tmp / "s1_0001.features.h5",
        "classifier": MODELS / "classifier.pth", "reads": tmp / "reads.tsv", "manifest": tmp / "manifest.json",
        "frames": [tmp / "s1_0001.frames.tsv", tmp / "s1_0002.frames.tsv"], "dnabert": MODELS / "dnabert",
        "esm": MODELS / "esm2_t2_tiny.pt", "esm_aux": [], "model_aux": [], "store": [],
    }
    vals = {"meta": meta, "chunk_length": chunk, "tokens_per_batch": 2048}
    for f in files.values():
        for p in f if isinstance(f, list) else [f]:
            if not p.exists():
                p.write_text("")
    out = []
    for decl in mod.inputs:
        item = []
        for el in decl.elements:
            table = vals if el.kind == "val" else files
            assert el.arg in table, f"{mod.name}: no test value for input {el.arg!r} (add one to _inputs)"
            value = table[el.arg]
            if el.arg == "fasta" and mod.name in ("PREPARE", "SUMMARIZE"):
                # two files of one sample with the same name: staged apart (input/1/, input/2/) or a collision
                value = [ROOT / "tests" / "data" / "pipeline" / lane / "reads.fa" for lane in ("lane1", "lane2")]
            if mod.name == "EMBED_PROTEIN" and el.arg == "model":
                value = MODELS / "esm2_t2_tiny.pt"
            item.append(value)
        out.append(item if len(item) > 1 else item[0])
    return out


def virnucpro_argv(command: str) -> list[list[str]]:
    """Each `virnucpro ...` command of a rendered script, as argv (line continuations joined)."""
    text = command.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("virnucpro "):
            out.append(shlex.split(line)[1:])
    return out


def _parses(argv: list[str]) -> None:
    try:
        build_parser().parse_args(argv)
    except SystemExit:
        raise AssertionError(f"`virnucpro {' '.join(argv)}` is refused by the CLI") from None


@pytest.mark.parametrize("profile", ["test", "test,gpu"])
@pytest.mark.parametrize("folder", MODULES)
def test_script_and_stub_render_and_parse(folder: str, profile: str, tmp_path: Path) -> None:
    mod = nfmodel.load_module(ROOT, folder)
    params = pipeline_params()
    for stub in (False, True):
        command, _ = nfmodel.render(mod, _inputs(mod, tmp_path), tmp_path / f"task{stub}", params=params, profile=profile, stub=stub)
        assert "null" not in command.split(), f"{mod.name}: a null rendered into the command:\n{command}"
        for argv in virnucpro_argv(command):
            _parses(argv)
        if not stub:
            assert virnucpro_argv(command), f"{mod.name}: the script runs no virnucpro command"


def _option(argv: list[str], opt: str) -> str | None:
    return argv[argv.index(opt) + 1] if opt in argv else None


def _render(folder: str, tmp: Path, profile: str = "test", chunk: int = 500, **params) -> list[str]:
    mod = nfmodel.load_module(ROOT, folder)
    command, _ = nfmodel.render(mod, _inputs(mod, tmp, chunk), tmp / "task", params=pipeline_params(**params), profile=profile)
    (argv,) = [a for a in virnucpro_argv(command)]
    return argv


#: (param, value, module, profile, option, expected value on the command line)
PARAM_TO_CLI = [
    ("precision", "bf16", "embed_dna", "test,gpu", "--precision", "bf16"),
    ("precision", "fp16", "embed_protein", "test,gpu", "--precision", "fp16"),
    ("precision", "bf16", "profile", "test,gpu", "--precision", "bf16"),
    ("store_dtype", "float16", "embed_dna", "test", "--store-dtype", "float16"),
    ("store_dtype", "float16", "embed_protein", "test", "--store-dtype", "float16"),
    ("predict_batch_size", 64, "predict", "test", "--batch-size", "64"),
    ("shards", 5, "prepare", "test", "--shards", "5"),
]


@pytest.mark.parametrize("param,value,folder,profile,option,expected", PARAM_TO_CLI)
def test_params_reach_the_cli(param, value, folder, profile, option, expected, tmp_path: Path) -> None:
    argv = _render(folder, tmp_path, profile, **{param: value})
    assert _option(argv, option) == expected, f"--{param} {value} gives {option} {_option(argv, option)} in {argv}"


def test_shard_tokens_reach_prepare_when_shards_unset(tmp_path: Path) -> None:
    argv = _render("prepare", tmp_path, shards=None, shard_tokens=9000)
    assert _option(argv, "--tokens-per-shard") == "9000" and "--shards" not in argv


@pytest.mark.parametrize("folder", ["embed_dna", "embed_protein"])
def test_device_follows_the_gpu_profile(folder: str, tmp_path: Path) -> None:
    cpu, gpu = _render(folder, tmp_path / "cpu"), _render(folder, tmp_path / "gpu", "test,gpu")
    assert (_option(cpu, "--device"), _option(cpu, "--precision")) == ("cpu", "fp32")
    assert (_option(gpu, "--device"), _option(gpu, "--tokens-per-batch")) == ("cuda", "2048")


@pytest.mark.parametrize("folder", ["prepare", "predict", "summarize"])
def test_chunk_length_reaches_the_cli(folder: str, tmp_path: Path) -> None:
    assert _option(_render(folder, tmp_path, chunk=300), "--chunk-length") == "300"


#: flags the pipeline relies on, per module (why: the docstring of each)
RELIED_ON = {
    "prepare": ["--allow-empty", "--prefix"],  # an empty sample must not stop the others; shard names carry the sample
    "summarize": ["--manifest", "--inputs"],  # shard checks; virus.fna sequences
    "predict": ["--chunk-length"],  # classifier / chunk length pairing
}


@pytest.mark.parametrize("folder", sorted(RELIED_ON))
def test_relied_on_flags_are_passed(folder: str, tmp_path: Path) -> None:
    argv = _render(folder, tmp_path)
    for flag in RELIED_ON[folder]:
        assert flag in argv, f"{folder}: {flag} is not passed ({argv})"
    if folder == "prepare":
        assert _option(argv, "--prefix") == SAMPLE


def test_schema_enums_match_cli_choices() -> None:
    schema = json.loads((ROOT / "nextflow_schema.json").read_text())
    props = {k: v for g in schema.get("$defs", schema.get("definitions", {})).values() for k, v in g.get("properties", {}).items()}
    parser = build_parser()
    sub = {a.dest: a for a in parser._subparsers._group_actions[0].choices["embed-dna"]._actions}
    run = {a.dest: a for a in parser._subparsers._group_actions[0].choices["run"]._actions}
    for param, action in (("precision", sub["precision"]), ("store_dtype", sub["store_dtype"]), ("chunk_length", run["chunk_length"])):
        assert param in props, f"{param} is not in nextflow_schema.json"
        assert sorted(map(str, props[param].get("enum", []))) == sorted(map(str, action.choices)), \
            f"--{param}: schema enum {props[param].get('enum')} but the CLI accepts {action.choices}"


# ---------------------------------------------------------------------------------------------------------------- stubs


@pytest.fixture(scope="module")
def stub_chain(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("stub")
    return wiring.run_chain(ROOT, base, pipeline_params(), sample=SAMPLE, fastas=[REF / "input.fa"], chunk=500,
                            dnabert=MODELS / "dnabert", esm=MODELS / "esm2_t2_tiny.pt", esm_aux=[], classifier=MODELS / "classifier.pth",
                            stub=True)


def test_stub_chain_outputs_have_their_kind(stub_chain: dict) -> None:
    (frames,) = [r.outputs["frames"][0][1] for r in stub_chain["PREDICT"][:1]]
    assert frames.read_text().startswith("Sequence_ID\tPrediction\tscore1\tscore2")
    summary = stub_chain["SUMMARIZE"].outputs["summary"][0][1]
    assert summary.read_text().split("\n")[0].split("\t")[:2] == ["read_id", "length"]
    mqc = stub_chain["SUMMARIZE"].outputs["mqc"][0][1]
    assert mqc.read_text().startswith("Sample\treads\tvirus")


@pytest.mark.parametrize("folder", ["profile", "models_download"])
def test_other_stubs_write_what_they_declare(folder: str, tmp_path: Path) -> None:
    mod = nfmodel.load_module(ROOT, folder)
    result = nfmodel.run_task(mod, _inputs(mod, tmp_path), tmp_path / "task", params=pipeline_params(), stub=True)
    assert result.outputs


# ---------------------------------------------------------------------------------------------------------------- publishing


def published(result: nfmodel.TaskResult, params: dict) -> list[str]:
    """Paths under --outdir that Nextflow would publish for one task (publishDir of conf/modules.config)."""
    cfg = nfmodel.process_config(ROOT, result.module.name, params)
    rules = cfg.settings.get("publishDir")
    rules = rules if isinstance(rules, list) else [rules] if rules else []
    meta = None
    for items in result.outputs.values():
        if isinstance(items[0], list) and isinstance(items[0][0], dict):
            meta = items[0][0]
    task = {"process": result.module.name, "ext": {}}
    out = []
    for items in result.outputs.values():
        files = [x for x in (items[0] if isinstance(items[0], list) else [items[0]]) if isinstance(x, (Path, list))]
        for f in [p for x in files for p in (x if isinstance(x, list) else [x])]:
            rel = f.relative_to(result.task_dir).as_posix()
            for rule in rules:
                enabled = rule.get("enabled", True)
                if not (enabled(extra={"meta": meta, "task": task}) if callable(enabled) else enabled):
                    continue
                save = rule.get("saveAs")
                name = save(rel, extra={"meta": meta, "task": task}) if save else rel
                if name is None:
                    continue
                path = rule["path"]
                folder = path(extra={"meta": meta, "task": task}) if callable(path) else path
                assert folder.startswith(params["outdir"]), f"{result.module.name} publishes outside --outdir: {folder}"
                out.append(f"{folder[len(params['outdir']):].strip('/')}/{name}".lstrip("/"))
    return out


def _normalise(path: str) -> str:
    return re.sub(r"_\d{4}\.", "_NNNN.", path.replace(SAMPLE, "<sample>"))


def docs_published() -> dict[str, str]:
    """The 'Published files' table of docs/output.md: path → writer."""
    text = (ROOT / "docs" / "output.md").read_text()
    section = re.search(r"^## Published files\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "docs/output.md has no '## Published files' section"
    rows = re.findall(r"^\|\s*`([^`]+)`\s*\|\s*([^|]+?)\s*\|\s*([^|]*?)\s*\|", section.group(1), re.M)
    return {path: (writer, when) for path, writer, when in rows}


def test_every_published_file_is_documented_and_every_documented_file_published(stub_chain: dict, tmp_path: Path) -> None:
    params = pipeline_params(save_shards=True, save_embeddings=True, save_frames=True)
    results = [stub_chain[p] for p in ("PREPARE", "SUMMARIZE")] + [r for p in ("EMBED_DNA", "EMBED_PROTEIN", "MERGE", "PREDICT") for r in stub_chain[p]]
    mod = nfmodel.load_module(ROOT, "profile")
    results.append(nfmodel.run_task(mod, _inputs(mod, tmp_path), tmp_path / "profile", params=params, stub=True))
    actual = {}
    for r in results:
        for path in published(r, params):
            actual[_normalise(path)] = r.module.name
    docs = {path: writer for path, (writer, _) in docs_published().items() if writer.strip("`").isupper() and writer.strip("`") in set(actual.values()) | {"PROFILE", "MODELS_DOWNLOAD"}}
    assert set(actual) == set(docs), f"published but undocumented: {sorted(set(actual) - set(docs))}; documented but not published: {sorted(set(docs) - set(actual))}"
    for path, writer in actual.items():
        assert docs[path].strip("`") == writer, f"{path}: docs say {docs[path]}, published by {writer}"
    # and the optional ones only with their --save_* switch
    off = pipeline_params(save_shards=False, save_embeddings=False, save_frames=False)
    kept = {_normalise(p) for r in results for p in published(r, off)}
    for path, (writer, when) in docs_published().items():
        if path in actual:
            assert (path in kept) == ("--save_" not in when), f"{path}: published {'always' if path in kept else 'only with a switch'}, docs say {when!r}"


def test_versions_file_and_multiqc_are_documented() -> None:
    main = wiring.workflow_main(ROOT)
    m = re.search(r"collectFile\(\s*storeDir:\s*\"\$\{outdir\}/([^\"]+)\",\s*name:\s*([^\n]+?),\s*\n", main)
    assert m, "the versions collectFile is not found in workflows/virnucpro.nf"
    name = evaluate(parse(m.group(2)), {})
    docs = docs_published()
    assert f"{m.group(1)}/{name}" in docs, f"{m.group(1)}/{name} (the versions file the pipeline writes) is not in docs/output.md"
    cfg = nfmodel.process_config(ROOT, "MULTIQC", pipeline_params())
    folder = cfg.settings["publishDir"]["path"](extra={"task": {}})
    assert f"{folder[len('results/'):]}/multiqc_report.html" in docs, "the MultiQC report is not in docs/output.md"
    assert re.search(r"^## MultiQC", (ROOT / "docs" / "output.md").read_text(), re.M), "docs/output.md has no MultiQC section"
