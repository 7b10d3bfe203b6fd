"""What workflows/virnucpro.nf wires into each process call, and a chained run of the real module scripts that
follows it.

WHY: the reviewer's missed mutations were all wiring: an emit swapped, a shard paired with another shard's file, a
relied-on flag dropped. Here each process call's arguments are traced back (through the `def ch_x = ...` channels)
to the `PROC.out.emit` channels they are built from, in the order they appear; the chained run takes its inputs from
exactly those emits, so a swapped emit hands a module the wrong files and the tool refuses them (shard identity,
file kinds: virnucpro.shards_check).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
import re
from dataclasses import dataclass
from pathlib import Path

import nfmodel
import pipeline_lint as lint


# ---------------------------------------------------------------------------------------------------------------- static


def workflow_main(root: Path) -> str:
    """The `main:` section of workflow VIRNUCPRO, comments removed."""
    text = (root / "workflows" / "virnucpro.nf").read_text()
    code, blanked = lint._strip_comments(text), lint.lex(text)
    m = re.search(r"\bworkflow\s+VIRNUCPRO\s*\{", code)
    end = lint.match_brace(blanked, m.end() - 1)
    body = code[m.end() : end]
    main = re.search(r"\bmain:\s*\n(.*?)(?=\n\s*emit:|\Z)", body, re.S)
    return main.group(1)


def functions(root: Path) -> dict[str, str]:
    """Top-level `def name(...) { body }` of the workflow file → body."""
    text = (root / "workflows" / "virnucpro.nf").read_text()
    code, blanked = lint._strip_comments(text), lint.lex(text)
    out = {}
    for m in re.finditer(r"(?m)^def\s+(\w+)\s*\([^)]*\)\s*\{", code):
        end = lint.match_brace(blanked, m.end() - 1)
        out[m.group(1)] = code[m.end() : end]
    return out


def _statement_end(blanked: str, start: int) -> int:
    """End of the expression starting at ``start``: brackets balanced and the next line not a `.method` chain."""
    depth, i = 0, start
    while i < len(blanked):
        c = blanked[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return i
        elif c == "\n" and depth == 0:
            rest = blanked[i + 1 :].lstrip(" \t")
            if not rest.startswith(".") and not rest.startswith("?") and not rest.startswith(":"):
                return i
        i += 1
    return i


def _matching(blanked: str, open_pos: int) -> int:
    """Index of the bracket closing the one at ``open_pos``."""
    depth = 0
    for k in range(open_pos, len(blanked)):
        if blanked[k] in "([{":
            depth += 1
        elif blanked[k] in ")]}":
            depth -= 1
            if depth == 0:
                return k
    raise AssertionError("unbalanced brackets in workflows/virnucpro.nf")


def definitions(main: str) -> dict[str, str]:
    """`def name = expression` (and `name = expression` re-assignments, appended) of the workflow's main."""
    blanked = lint.lex(main)
    out: dict[str, str] = {}
    for m in re.finditer(r"(?m)^\s*(?:def\s+)?([a-z_]\w*)\s*=(?!=)\s*", blanked):
        end = _statement_end(blanked, m.end())
        out[m.group(1)] = (out.get(m.group(1), "") + " " + main[m.end() : end]).strip()
    return out


@dataclass
class Call:
    process: str
    args: list[str]


def calls(main: str) -> list[Call]:
    """Every `PROCESS(arg, ...)` statement of the workflow's main."""
    blanked = lint.lex(main)
    out = []
    for m in re.finditer(r"(?m)^\s*([A-Z][A-Z0-9_]*)\s*\(", blanked):
        close = _matching(blanked, m.end() - 1)
        out.append(Call(m.group(1), nfmodel._split_top(main[m.end() : close])))
    return out


def sources(expr: str, defs: dict[str, str], seen: frozenset = frozenset()) -> list[str]:
    """`PROC.out.emit` channels (and workflow inputs such as ch_samplesheet) an expression is built from, in order."""
    out: list[str] = []
    for m in re.finditer(r"\b([A-Z][A-Z0-9_]*)\.out\.(\w+)|\b([a-z_]\w*)\b", expr):
        if m.group(1):
            ref = f"{m.group(1)}.out.{m.group(2)}"
            if ref not in out:
                out.append(ref)
        elif m.group(3) in defs and m.group(3) not in seen:
            for ref in sources(defs[m.group(3)], defs, seen | {m.group(3)}):
                if ref not in out:
                    out.append(ref)
    return out


def wiring(root: Path) -> dict[str, list[list[str]]]:
    """Process → per argument, the upstream emits it is built from (in order of appearance)."""
    main = workflow_main(root)
    defs = definitions(main)
    return {c.process: [sources(a, defs) for a in c.args] for c in calls(main)}


# ---------------------------------------------------------------------------------------------------------------- chain


def _emit(results: dict, ref: str, meta_key) -> object:
    proc, _, emit = ref.split(".")
    items = results[proc]
    matches = [r.outputs[emit][0] for r in items if emit in r.outputs and _key(r.outputs[emit][0][0]) == meta_key] \
        if isinstance(items, list) else [items.outputs[emit][0]]
    if len(matches) != 1:
        raise AssertionError(f"{ref}: {len(matches)} item(s) for {meta_key}")
    item = matches[0]
    return item[1] if len(item) == 2 else item[1:]


def _key(meta: dict) -> tuple:
    return tuple(sorted(meta.items()))


def _shards_to_embed(meta: dict, nucs, prots, manifest: Path) -> list[tuple[dict, Path, Path]]:
    """Python twin of the workflow's shardsToEmbed (its behaviour is pinned by test_wiring)."""
    nucs = sorted(nucs if isinstance(nucs, list) else [nucs])
    prots = sorted(prots if isinstance(prots, list) else [prots])
    frames = {s["nuc"]: int(s["frames"]) for s in json.loads(Path(manifest).read_text())["shards"]}
    pairs = list(zip(nucs, prots))
    kept = [p for p in pairs if frames.get(p[0].name, 0) > 0] or pairs[:1]
    number = lambda f: int(re.search(r"_(\d+)\.(nuc|prot)\.fa$", f.name).group(1))  # noqa: E731
    return [({**meta, "shard": number(n), "n_shards": len(kept)}, n, p) for n, p in kept]


def run_chain(root: Path, base: Path, params: dict, *, sample: str, fastas: list[Path], chunk: int, dnabert: Path,
              esm: Path, esm_aux: list[Path], classifier: Path, stub: bool = False) -> dict:
    """Run every module of the main path once per task, inputs taken from the emits the workflow wires."""
    wired = wiring(root)
    mods = {name: nfmodel.load_module(root, name.lower()) for name in
            ("PREPARE", "EMBED_DNA", "EMBED_PROTEIN", "MERGE", "PREDICT", "SUMMARIZE")}
    kw = dict(params=params, root=root, stub=stub)
    meta = {"id": sample}
    results: dict = {}
    results["PREPARE"] = nfmodel.run_task(mods["PREPARE"], [[meta, list(fastas)], chunk], base / "prepare", **kw)
    prep = results["PREPARE"].outputs
    (_, nucs, prots) = prep["shards"][0]
    shards = _shards_to_embed(meta, nucs, prots, prep["manifest"][0][1])
    results["EMBED_DNA"], results["EMBED_PROTEIN"], results["MERGE"], results["PREDICT"] = [], [], [], []
    tpb = int(params.get("dna_tokens_per_batch") or 0)
    tpp = int(params.get("protein_tokens_per_batch") or 0)
    # the tasks of one step run side by side, as Nextflow runs them
    def embed(item):
        smeta, nuc, prot = item
        tag = f"{smeta['shard']:04d}"
        return (nfmodel.run_task(mods["EMBED_DNA"], [[smeta, nuc], dnabert, tpb], base / f"dna_{tag}", **kw),
                nfmodel.run_task(mods["EMBED_PROTEIN"], [[smeta, prot], [esm, list(esm_aux)], tpp], base / f"protein_{tag}", **kw))

    def merge(item):
        smeta, tag = item[0], f"{item[0]['shard']:04d}"
        files = [_emit(results, ref, _key(smeta)) for ref in wired["MERGE"][0]]
        return nfmodel.run_task(mods["MERGE"], [[smeta, *files]], base / f"merge_{tag}", **kw)

    def predict(item):
        smeta, tag = item[0], f"{item[0]['shard']:04d}"
        features = [_emit(results, ref, _key(smeta)) for ref in wired["PREDICT"][0]]
        return nfmodel.run_task(mods["PREDICT"], [[smeta, *features], classifier, chunk], base / f"predict_{tag}", **kw)

    with ThreadPoolExecutor(4) as pool:
        for dna, protein in pool.map(embed, shards):
            results["EMBED_DNA"].append(dna)
            results["EMBED_PROTEIN"].append(protein)
        results["MERGE"] = list(pool.map(merge, shards))
        results["PREDICT"] = list(pool.map(predict, shards))
    # SUMMARIZE: the sample's items of every emit its first argument is built from, in the workflow's order
    parts = []
    for ref in wired["SUMMARIZE"][0]:
        proc = ref.split(".")[0]
        if proc == "PREPARE":
            parts.append(_emit(results, ref, _key(meta)))
        else:
            parts.append([_emit(results, ref, _key(sm)) for sm, _, _ in shards])
    results["SUMMARIZE"] = nfmodel.run_task(mods["SUMMARIZE"], [[meta, *parts, list(fastas)], chunk], base / "summarize", **kw)
    results["shards"] = shards
    return results
