"""Run a local module's `script:`/`stub:` block as Nextflow would, with bash, in a task folder of our own.

WHY: a module's command line is where the pipeline and the tool meet; rendering it from the real main.nf and
conf/modules.config (ext.args for a profile, task.cpus, prefix, staged input names per ``stageAs``) and running it
on bundled data checks the meeting for real, without Nextflow. Declared outputs are then collected by their globs
exactly as Nextflow would, and a file written but not declared (or declared but not written) is an error.

Rendering is done by :mod:`groovy` (an honest subset: anything it does not implement raises).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pipeline_lint as lint
from groovy import Closure, Parser, Staged, Unsupported, evaluate, parse, run_defs_and_string

ROOT = lint.ROOT


# ---------------------------------------------------------------------------------------------------------------- config


def _assignments(body: str, scope: dict) -> dict[str, Any]:
    """`a.b = expr` statements of a config block → {'a.b': value} (closures stay closures)."""
    p = Parser(body)
    out: dict[str, Any] = {}
    while p.peek().kind != "end":
        names = [p.take().value]
        while p.accept("."):
            names.append(p.take().value)
        p.expect("=")
        out[".".join(names)] = evaluate(p.expr(), scope)
    return out


@dataclass
class ProcessConfig:
    """What conf/modules.config sets for one process (the last matching withName wins, as in Nextflow)."""

    settings: dict[str, Any] = field(default_factory=dict)

    def value(self, key: str, scope: dict) -> Any:
        v = self.settings.get(key)
        return v(extra=scope) if isinstance(v, Closure) else v


def modules_config(root: Path, params: dict) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """(defaults of the process scope, [(withName selector, settings)]) of conf/modules.config."""
    text = lint._strip_comments((root / "conf" / "modules.config").read_text())
    blanked = lint.lex((root / "conf" / "modules.config").read_text())
    m = re.search(r"\bprocess\s*\{", text)
    end = lint.match_brace(blanked, m.end() - 1)
    body, bbody = text[m.end() : end], blanked[m.end() : end]
    scope = {"params": params}
    blocks, rest, last = [], [], 0
    for w in re.finditer(r"withName\s*:\s*'([^']+)'\s*\{", bbody):
        if w.start() < last:
            continue
        close = lint.match_brace(bbody, w.end() - 1)
        selector = re.search(r"withName\s*:\s*'([^']+)'", body[w.start() : w.end()]).group(1)
        blocks.append((selector, _assignments(body[w.end() : close], scope)))
        rest.append(body[last : w.start()])
        last = close + 1
    rest.append(body[last:])
    return _assignments("".join(rest), scope), blocks


def process_config(root: Path, name: str, params: dict) -> ProcessConfig:
    defaults, blocks = modules_config(root, params)
    settings = dict(defaults)
    for selector, values in blocks:
        if re.fullmatch(selector, name):
            settings.update(values)
    return ProcessConfig(settings)


def schema_defaults(root: Path) -> dict[str, Any]:
    """Every param with its default from nextflow_schema.json (the contract tests keep nextflow.config equal)."""
    schema = json.loads((root / "nextflow_schema.json").read_text())
    out: dict[str, Any] = {}
    for group in schema.get("$defs", schema.get("definitions", {})).values():
        for key, spec in group.get("properties", {}).items():
            out[key] = spec.get("default")
    return out


# ---------------------------------------------------------------------------------------------------------------- module


def _split_top(text: str) -> list[str]:
    """Split at top-level commas (not inside parentheses, brackets or strings)."""
    parts, depth, buf, quote = [], 0, [], None
    for c in text:
        if quote:
            buf.append(c)
            if c == quote:
                quote = None
            continue
        if c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(buf).strip())
            buf = []
        else:
            buf.append(c)
    if "".join(buf).strip():
        parts.append("".join(buf).strip())
    return parts


@dataclass
class Element:
    kind: str  # val, path, eval, env, stdout
    arg: str  # variable name (val/path input), glob/expression source (output)
    options: dict[str, str]


def _element(src: str) -> Element:
    m = re.fullmatch(r"(val|path|eval|env|file)\s*\((.*)\)\s*", src, re.S) or re.fullmatch(r"(val|path)\s+(.+)", src.strip())
    if not m:
        raise Unsupported(f"declaration {src!r}")
    parts = _split_top(m.group(2))
    opts = {}
    for extra in parts[1:]:
        k, v = extra.split(":", 1)
        opts[k.strip()] = v.strip()
    return Element(m.group(1), parts[0].strip(), opts)


@dataclass
class Declaration:
    elements: list[Element]
    options: dict[str, str]  # emit, optional, topic


def _declarations(section: str) -> list[Declaration]:
    out = []
    for raw in lint._strip_comments(section).splitlines():
        line = raw.strip()
        if not line:
            continue
        line = re.sub(r"^tuple\s+", "", line)
        elements, options = [], {}
        for part in _split_top(line):
            o = re.fullmatch(r"(emit|optional|topic)\s*:\s*(.+)", part)
            e = re.fullmatch(r"(stageAs|arity)\s*:\s*(.+)", part)  # `path x, stageAs: 'y'` (no parentheses)
            if o:
                options[o.group(1)] = o.group(2).strip()
            elif e and elements and elements[-1].kind == "path":
                elements[-1].options[e.group(1)] = e.group(2).strip()
            else:
                elements.append(_element(part))
        out.append(Declaration(elements, options))
    return out


@dataclass
class Module:
    name: str
    path: Path
    directives: str
    inputs: list[Declaration]
    outputs: list[Declaration]
    script: str
    stub: str

    @property
    def labels(self) -> list[str]:
        return re.findall(r"label\s+'([^']+)'", self.directives)


def load_module(root: Path, folder: str) -> Module:
    main = root / "modules" / "local" / folder / "main.nf"
    (p,) = lint.find_processes(main)
    s = p.sections
    return Module(p.name, main, s["directives"], _declarations(s.get("input", "")), _declarations(s.get("output", "")),
                  s.get("script", ""), s.get("stub", ""))


# ---------------------------------------------------------------------------------------------------------------- running


def _stage(task_dir: Path, el: Element, value: Any) -> Staged:
    """Link the files of one `path` input into the task folder as Nextflow stages them (stageAs patterns)."""
    pattern = el.options.get("stageAs", "").strip("'\"") or "*"
    files = [Path(v) for v in (value if isinstance(value, list) else [value])]
    names = []
    for k, f in enumerate(files, 1):
        if "*" in pattern or "?" in pattern:
            rel = pattern.replace("?", str(k)).replace("*", f.name)
        elif len(files) == 1:
            rel = pattern
        else:
            raise Unsupported(f"stageAs {pattern!r} without a wildcard for {len(files)} files")
        target = task_dir / rel
        if target.exists() or target.is_symlink():
            raise AssertionError(f"{el.arg}: two inputs staged as {rel} (input file name collision)")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(f.resolve())
        names.append(rel)
    return Staged(names, single=not isinstance(value, list))


@dataclass
class TaskResult:
    module: Module
    task_dir: Path
    command: str
    outputs: dict[str, list]  # emit name → items (a tuple item is a list [meta, files...])
    returncode: int
    stderr: str


def _collect(task_dir: Path, pattern: str) -> list[Path]:
    """Files matching an output glob as Nextflow does (relative to the task folder, '*' not crossing '/')."""
    hits = []
    for p in sorted(task_dir.rglob("*")):
        rel = p.relative_to(task_dir).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        if rel.count("/") == pattern.count("/") and fnmatch.fnmatchcase(rel, pattern):
            if p.is_dir() and any(rel.startswith(x) for x in ()):
                continue
            hits.append(p)
    return hits


def shim_bin(base: Path) -> Path:
    """A `virnucpro` on PATH that runs this checkout's package with this Python."""
    bindir = base / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    exe = bindir / "virnucpro"
    if not exe.exists():
        exe.write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" -m virnucpro "$@"\n')
        exe.chmod(0o755)
    return bindir


def render(module: Module, inputs: list, task_dir: Path, *, params: dict, profile: str = "test", root: Path = ROOT,
           stub: bool = False, cpus: int = 2, attempt: int = 1) -> tuple[str, dict]:
    """Stage ``inputs`` (one value per input declaration; a tuple declaration takes a list) and render the block."""
    scope: dict[str, Any] = {}
    task_dir.mkdir(parents=True, exist_ok=True)
    if len(inputs) != len(module.inputs):
        raise AssertionError(f"{module.name} declares {len(module.inputs)} inputs, got {len(inputs)}")
    for decl, value in zip(module.inputs, inputs):
        values = value if len(decl.elements) > 1 else [value]
        if len(values) != len(decl.elements):
            raise AssertionError(f"{module.name}: tuple of {len(decl.elements)} given {len(values)} values")
        for el, v in zip(decl.elements, values):
            if el.kind == "val":
                scope[el.arg] = v
            elif el.kind == "path":
                scope[el.arg] = _stage(task_dir, el, v) if v != [] else Staged([], single=False)
            else:
                raise Unsupported(f"input {el.kind}")
    gpu = "gpu" in profile.split(",") and "process_gpu" in module.labels
    task = {"cpus": cpus, "attempt": attempt, "accelerator": {"request": 1} if gpu else None,
            "process": module.name, "index": 1, "ext": {}}
    cfg = process_config(root, module.name, params)
    task_scope = {**scope, "task": task, "params": params}
    for key in ("args", "args2", "prefix", "when"):
        if f"ext.{key}" in cfg.settings:
            task["ext"][key] = cfg.value(f"ext.{key}", task_scope)
    scope.update(task=task, params=params, moduleDir=str(module.path.parent), projectDir=str(root))
    block = module.stub if stub else module.script
    return run_defs_and_string(block, scope), {**scope, "config": cfg}


_EVAL_CACHE: dict[str, str] = {}


def run_task(module: Module, inputs: list, task_dir: Path, *, params: dict, profile: str = "test", root: Path = ROOT,
             stub: bool = False, check: bool = True, env: dict | None = None) -> TaskResult:
    command, scope = render(module, inputs, task_dir, params=params, profile=profile, root=root, stub=stub)
    (task_dir / ".command.sh").write_text("#!/bin/bash -euo pipefail\n" + command)
    before = {p for p in task_dir.rglob("*")}
    run_env = {**os.environ, **(env or {})}
    run_env["PATH"] = f"{shim_bin(task_dir.parent)}:{run_env['PATH']}"
    proc = subprocess.run(["bash", "-euo", "pipefail", ".command.sh"], cwd=task_dir, env=run_env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module.name} failed ({proc.returncode}):\n{command}\n{proc.stderr[-3000:]}")
    outputs: dict[str, list] = {}
    declared: set[Path] = set()
    for decl in module.outputs:
        item: list = []
        for el in decl.elements:
            if el.kind == "val":
                item.append(evaluate(parse(el.arg), scope))
            elif el.kind == "path":
                pattern = evaluate(parse(el.arg), scope)
                hits = _collect(task_dir, pattern)
                hits = [h for h in hits if h not in before]
                if not hits and "optional" not in decl.options and proc.returncode == 0:
                    raise AssertionError(f"{module.name}: output {pattern!r} ({decl.options.get('emit')}) matched no file")
                for h in hits:
                    declared.add(h)
                    if h.is_dir():
                        declared.update(h.rglob("*"))
                item.append(hits[0] if len(hits) == 1 else hits)
            elif el.kind == "eval":
                cmd = evaluate(parse(el.arg), scope)
                if cmd not in _EVAL_CACHE:  # the same version command in every module: run it once
                    r = subprocess.run(["bash", "-c", cmd], cwd=task_dir, env=run_env, capture_output=True, text=True)
                    if r.returncode or not r.stdout.strip():
                        raise AssertionError(f"{module.name}: eval output {cmd!r} failed: {r.stderr}")
                    _EVAL_CACHE[cmd] = r.stdout.strip()
                item.append(_EVAL_CACHE[cmd])
            else:
                raise Unsupported(f"output {el.kind}")
        if "emit" in decl.options:
            outputs[decl.options["emit"]] = [item if len(item) > 1 else item[0]]
    if proc.returncode == 0:
        written = {p for p in task_dir.rglob("*") if p not in before and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(task_dir).parts)}
        undeclared = sorted(str(p.relative_to(task_dir)) for p in written - declared)
        if undeclared:
            raise AssertionError(f"{module.name}: wrote files no output declares: {undeclared}")
    return TaskResult(module, task_dir, command, outputs, proc.returncode, proc.stderr)
