"""Channel wiring of workflows/virnucpro.nf, read statically: which emit feeds each process, how shards meet, what
GPU processes do on failure. (Named test_a_*: these run first and fail in seconds.)"""

from __future__ import annotations

import re

import nfmodel
import pipeline_lint as lint
import wiring
from support import ROOT

#: process → per argument, the upstream emits it must be built from, in this order
EXPECTED_SOURCES = {
    "EMBED_DNA": [["PREPARE.out.shards", "PREPARE.out.manifest"]],
    "EMBED_PROTEIN": [["PREPARE.out.shards", "PREPARE.out.manifest"]],
    "MERGE": [["EMBED_DNA.out.h5", "EMBED_PROTEIN.out.h5"]],
    "PREDICT": [["MERGE.out.h5"]],
    "SUMMARIZE": [["PREPARE.out.reads", "PREPARE.out.manifest", "PREDICT.out.frames"]],
}


def test_every_process_input_comes_from_the_right_emit() -> None:
    wired = wiring.wiring(ROOT)
    for proc, args in EXPECTED_SOURCES.items():
        assert proc in wired, f"{proc} is never called in workflows/virnucpro.nf"
        for k, want in enumerate(args):
            assert wired[proc][k] == want, f"{proc} argument {k + 1} is built from {wired[proc][k]}, expected {want}"
    assert "SUMMARIZE.out.mqc" in [r for arg in wired["MULTIQC"] for r in arg], "MultiQC does not get SUMMARIZE.out.mqc"


def test_every_referenced_emit_exists_in_its_module() -> None:
    declared = {}
    for folder in sorted((ROOT / "modules" / "local").iterdir()):
        mod = nfmodel.load_module(ROOT, folder.name)
        declared[mod.name] = {d.options.get("emit") for d in mod.outputs}
    for proc, args in wiring.wiring(ROOT).items():
        for arg in args:
            for ref in arg:
                up, _, emit = ref.split(".")
                if up in declared:
                    assert emit in declared[up], f"{proc} reads {ref}, which {up} does not emit"


def _closure_pick(expr: str) -> tuple[list[str], list[str]]:
    m = re.search(r"\{\s*([\w\s,]+?)\s*->\s*\[([^\]]*)\]\s*\}", expr)
    assert m, f"no closure of the form {'{ a, b -> [..] }'} in {expr!r}"
    return [p.strip() for p in m.group(1).split(",")], [p.strip() for p in m.group(2).split(",")]


def test_each_embedding_takes_its_own_side_of_the_shard() -> None:
    main = wiring.workflow_main(ROOT)
    args = {c.process: c.args for c in wiring.calls(main)}
    for proc, position in (("EMBED_DNA", 1), ("EMBED_PROTEIN", 2)):
        params, picked = _closure_pick(args[proc][0])
        assert picked[0] == params[0], f"{proc} does not pass the shard's meta first"
        assert picked[1] == params[position], f"{proc} takes {picked[1]!r}, not the {'nucleotide' if position == 1 else 'protein'} shard"
        assert args[proc][0].split(".")[0].strip() == args["EMBED_DNA"][0].split(".")[0].strip(), "the two embeddings read different shard channels"


def test_shard_files_meet_by_join_on_meta() -> None:
    main = wiring.workflow_main(ROOT)
    defs = wiring.definitions(main)
    args = {c.process: c.args for c in wiring.calls(main)}
    for what, expr in (("MERGE input", args["MERGE"][0]), ("SUMMARIZE input", defs.get(args["SUMMARIZE"][0].strip(), ""))):
        assert ".join(" in expr, f"{what}: not a join"
        for op in (".merge(", ".combine(", ".mix(", ".concat(", "by:"):
            assert op not in expr, f"{what}: {op} can pair items of different shards/samples"
        for join in re.findall(r"\.join\(([^)]*)\)", expr):
            assert "failOnMismatch: true" in join and "failOnDuplicate: true" in join, f"{what}: join without failOnMismatch/failOnDuplicate"


def test_shard_meta_and_pairing() -> None:
    fn = wiring.functions(ROOT)["shardsToEmbed"]
    assert re.search(r"shard\s*:\s*shardNumber\(pair\[0\]\)", fn), "shard meta is not the nucleotide file's shard number"
    assert re.search(r"shardNumber\(pair\[0\]\)\s*!=\s*shardNumber\(pair\[1\]\)", fn), "nucleotide/protein pairs are not checked"
    assert re.search(r"\.sort\s*\{\s*f\s*->\s*shardNumber\(f\)\s*\}", fn), "shards are not sorted by number before pairing"
    assert re.search(r"frames\[pair\[0\]\.name\]", fn) and "> 0L" in fn, "shards without frames are not left out"
    main = wiring.workflow_main(ROOT)
    assert re.search(r"groupKey\(\s*meta\.id\s*,\s*meta\.n_shards", main), "frames are not grouped per sample by its shard count"


def _label_block(config_text: str, label: str) -> str:
    code, blanked = lint._strip_comments(config_text), lint.lex(config_text)
    m = re.search(r"withLabel\s*:\s*['\"]?" + label + r"['\"]?\s*\{", code)
    return code[m.end() : lint.match_brace(blanked, m.end() - 1)] if m else ""


def test_gpu_processes_retry_and_hold_an_accelerator() -> None:
    base = (ROOT / "conf" / "base.config").read_text()
    gpu_block = _label_block(base, "process_gpu")
    for folder in sorted((ROOT / "modules" / "local").iterdir()):
        mod = nfmodel.load_module(ROOT, folder.name)
        if "process_gpu" not in mod.labels:
            continue
        cfg = nfmodel.process_config(ROOT, mod.name, nfmodel.schema_defaults(ROOT))
        for directive in ("errorStrategy", "maxRetries", "accelerator"):
            assert re.search(rf"\b{directive}\s*=", gpu_block) or directive in cfg.settings, \
                f"GPU process {mod.name}: no {directive} (conf/base.config withLabel process_gpu)"


def test_params_reach_the_task_inputs() -> None:
    main = wiring.workflow_main(ROOT)
    defs = wiring.definitions(main)

    def expand(expr: str, depth: int = 0) -> str:
        if depth > 6:
            return expr
        return re.sub(r"\b([a-z_]\w*)\b", lambda m: "(" + expand(defs[m.group(1)], depth + 1) + ")" if m.group(1) in defs else m.group(1), expr)

    args = {c.process: c.args for c in wiring.calls(main)}
    assert "params.dna_tokens_per_batch" in expand(args["EMBED_DNA"][2])
    assert "params.protein_tokens_per_batch" in expand(args["EMBED_PROTEIN"][2])
    for proc, k in (("PREPARE", 1), ("PREDICT", 2), ("SUMMARIZE", 1)):
        assert args[proc][k].strip() == "chunk_length", f"{proc} does not get the workflow's chunk_length"


def test_each_process_gets_its_own_model() -> None:
    """A model channel swapped between processes (DNABERT-S given to ESM-2, ...) would load the wrong weights."""
    main = wiring.workflow_main(ROOT)
    args = {c.process: c.args for c in wiring.calls(main)}
    for proc, k, word, others in (("EMBED_DNA", 1, "dnabert", ("esm", "classifier")), ("EMBED_PROTEIN", 1, "esm", ("dnabert", "classifier")),
                                  ("PREDICT", 1, "classifier", ("dnabert", "esm"))):
        arg = args[proc][k]
        assert word in arg and not any(o in arg for o in others), f"{proc} argument {k + 1} is {arg!r}, not the {word} model"
