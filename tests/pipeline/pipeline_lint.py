"""Static checks of the Nextflow layer (no Nextflow needed); used by tests/pipeline/test_pipeline_static.py.

Every checker takes the pipeline root (so tests can point it at a broken copy in tmp_path) and returns a list of
:class:`Finding`; an empty list means the check passed. What is checked:

- :func:`check_syntax`: every ``.nf``/``.config`` file parses with reftrace (``Module.from_file`` /
  ``ConfigFile.from_file``) AND passes a Groovy-aware lexical balance check (brackets, strings including
  triple-quoted and slashy ones, ``${...}`` inside GStrings, comments). The lexical check exists because reftrace's
  parser accepts some broken files (an unterminated ``\"\"\"`` running to the end of a file parses without error).
- :func:`check_processes`: each process has tag, label, container (pointing at ``params.container``), conda (an
  existing file), a ``script:`` and a ``stub:`` block, and exactly one ``virnucpro <subcommand>`` call.
- :func:`check_labels`: every label used by a process is configured with ``withLabel`` in conf/base.config.
- :func:`check_cli_commands`: every ``virnucpro ...`` command in a script (interpolations replaced by plausible
  values) and every option group in the process' ``ext.args`` (conf/modules.config) is accepted by
  ``virnucpro.cli.build_parser()``.
- :func:`check_schema`: nextflow_schema.json and assets/schema_input.json are valid draft 2020-12 schemas; every
  ``params.X`` used anywhere is described; every config default has the schema's type (and equals the schema
  default where one is given); the test samplesheet validates against schema_input.json.
- :func:`check_includes`: include statements point at existing files and name processes/workflows/functions
  defined there; ``plugin/`` includes name a plugin declared in nextflow.config.
- :func:`check_module_layout`: every module folder has main.nf, a parseable meta.yml and tests/main.nf.test with
  a ``-stub`` test; GPU modules (label process_gpu) are tagged ``gpu``; withName selectors in conf/modules.config
  name existing processes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from groovy import closing_brace

ROOT = Path(__file__).resolve().parents[2]
PIPELINE_DIRS = ("main.nf", "nextflow.config", "workflows", "subworkflows", "modules", "conf", "tests")
SECTION_RE = re.compile(r"^\s*(input|output|when|script|shell|exec|stub)\s*:\s*$", re.M)


@dataclass(frozen=True)
class Finding:
    check: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.path}: {self.message}"


def _rel(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def nextflow_files(root: Path, suffixes: tuple[str, ...] = (".nf", ".config")) -> list[Path]:
    """Pipeline .nf/.config files (nf-test files and work/ folders excluded)."""
    out: set[Path] = set()
    for entry in PIPELINE_DIRS:
        p = root / entry
        if p.is_file() and p.suffix in suffixes:
            out.add(p)
        elif p.is_dir():
            for f in p.rglob("*"):
                if f.is_file() and f.suffix in suffixes and not {"work", ".nf-test", "data"} & set(f.relative_to(root).parts):
                    out.add(f)
    return sorted(out)


# --------------------------------------------------------------------------------------------------------------
# Groovy lexer: enough to balance brackets, skip strings/comments, and find code vs string regions
# --------------------------------------------------------------------------------------------------------------

_OPEN = {"{": "}", "(": ")", "[": "]"}
_CLOSE = {v: k for k, v in _OPEN.items()}
_REGEX_PREV = set("(,=~!&|?:[{;+-*%<>") | {""}


class LexError(Exception):
    def __init__(self, message: str, line: int):
        super().__init__(f"line {line}: {message}")
        self.line = line


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def lex(text: str, keep_strings: bool = False) -> str:
    """Return ``text`` with comments and string contents blanked (same length, newlines kept).

    With ``keep_strings`` only comments are blanked (to find ``params.x`` inside GStrings). Raises
    :class:`LexError` on an unterminated string/comment or an unbalanced bracket. GString ``${...}``
    expressions are lexed as code (their brackets must balance; nested strings are handled).
    """
    out = list(text)
    i, n = 0, len(text)
    last_sig = ""  # last significant code character (for slashy-string detection)

    def blank(a: int, b: int, is_string: bool) -> None:
        if is_string and keep_strings:
            return
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    def scan_string(i: int, quote: str) -> int:
        """i at the opening quote; returns index after the closing quote. Handles ${} in GStrings."""
        start = i
        triple = text.startswith(quote * 3, i)
        delim = quote * 3 if triple else quote
        i += len(delim)
        interpolate = quote == '"'
        while i < n:
            c = text[i]
            if c == "\\":
                i += 2
                continue
            if not triple and c == "\n":
                raise LexError(f"unterminated string {delim}", _line_of(text, start))
            if text.startswith(delim, i):
                blank(start + 1, i, True)
                return i + len(delim)
            if interpolate and text.startswith("${", i):
                blank(start + 1, i, True)
                i = scan_code(i + 2, "}")
                start = i - 1
                continue
            i += 1
        raise LexError(f"unterminated string {delim}", _line_of(text, start))

    def scan_slashy(i: int) -> int:
        start = i
        i += 1
        while i < n:
            c = text[i]
            if c == "\\":
                i += 2
                continue
            if c == "\n":
                raise LexError("unterminated slashy string", _line_of(text, start))
            if c == "/":
                blank(start + 1, i, True)
                return i + 1
            i += 1
        raise LexError("unterminated slashy string", _line_of(text, start))

    def scan_code(i: int, until: str | None) -> int:
        nonlocal last_sig
        depth_stack: list[tuple[str, int]] = []
        while i < n:
            c = text[i]
            if text.startswith("//", i):
                j = text.find("\n", i)
                j = n if j < 0 else j
                blank(i, j, False)
                i = j
                continue
            if text.startswith("/*", i):
                j = text.find("*/", i + 2)
                if j < 0:
                    raise LexError("unterminated /* comment", _line_of(text, i))
                blank(i, j + 2, False)
                i = j + 2
                continue
            if c in "\"'":
                i = scan_string(i, c)
                last_sig = "s"
                continue
            if c == "/" and last_sig in _REGEX_PREV:
                i = scan_slashy(i)
                last_sig = "s"
                continue
            if c in _OPEN:
                depth_stack.append((c, i))
            elif c in _CLOSE:
                if not depth_stack:
                    if until is not None and c == until:
                        last_sig = c
                        return i + 1
                    raise LexError(f"unmatched '{c}'", _line_of(text, i))
                o, pos = depth_stack.pop()
                if _OPEN[o] != c:
                    raise LexError(f"'{o}' opened on line {_line_of(text, pos)} closed by '{c}'", _line_of(text, i))
            if not c.isspace():
                last_sig = c if not (c.isalnum() or c in "_$.") else "a"
            i += 1
        if depth_stack:
            o, pos = depth_stack[-1]
            raise LexError(f"'{o}' never closed", _line_of(text, pos))
        if until is not None:
            raise LexError("unterminated ${...} interpolation", _line_of(text, n - 1))
        return i

    scan_code(0, None)
    return "".join(out)


def match_brace(text: str, open_pos: int) -> int:
    """Index of the '}' matching the '{' at open_pos; ``text`` must already be blanked with :func:`lex`."""
    depth = 0
    for k in range(open_pos, len(text)):
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    raise LexError("unbalanced block", _line_of(text, open_pos))


# --------------------------------------------------------------------------------------------------------------
# (a) syntax
# --------------------------------------------------------------------------------------------------------------

_REFTRACE_CACHE: dict[tuple[str, str], object] = {}


def reftrace_module(path: Path):
    """reftrace.Module for a .nf file, memoised by content (every checker and every broken copy parses the same
    files; reftrace is the slow part of these checks)."""
    import hashlib

    import reftrace

    key = ("nf", hashlib.sha1(path.read_bytes()).hexdigest())
    if key not in _REFTRACE_CACHE:
        _REFTRACE_CACHE[key] = reftrace.Module.from_file(str(path))
    return _REFTRACE_CACHE[key]


def reftrace_parse(path: Path) -> str | None:
    """reftrace parse error message for a .nf or .config file, or None when it parses."""
    import reftrace

    if path.suffix == ".nf":
        res = reftrace_module(path)
        return res.error if isinstance(res, reftrace.ParseError) else None
    import hashlib

    key = ("config", hashlib.sha1(path.read_bytes()).hexdigest())
    if key not in _REFTRACE_CACHE:
        res = reftrace.ConfigFile.from_file(str(path))
        _REFTRACE_CACHE[key] = str(res.error).strip() if res.error is not None else None
    return _REFTRACE_CACHE[key]


def check_syntax(root: Path = ROOT) -> list[Finding]:
    findings = []
    for f in nextflow_files(root):
        # vendored nf-core modules/subworkflows are checked by nf-core lint (modules_json, files_unchanged); the
        # lexical check below still covers them
        vendored = {"nf-core"} & set(f.relative_to(root).parts[:2])
        err = None if vendored else reftrace_parse(f)
        if err:
            findings.append(Finding("syntax", _rel(root, f), f"reftrace: {err}"))
        try:
            lex(f.read_text())
        except LexError as exc:
            findings.append(Finding("syntax", _rel(root, f), f"lexical: {exc}"))
    return findings


# --------------------------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------------------------

@dataclass
class ProcessBlock:
    name: str
    path: Path
    body: str  # raw text between the braces
    sections: dict[str, str]  # 'directives', 'input', 'output', 'script', 'stub', ...


def find_processes(path: Path) -> list[ProcessBlock]:
    text = path.read_text()
    blanked = lex(text)
    out = []
    for m in re.finditer(r"(?m)^\s*process\s+([A-Za-z_]\w*)\s*\{", blanked):
        open_pos = m.end() - 1
        close = match_brace(blanked, open_pos)
        body, bbody = text[open_pos + 1 : close], blanked[open_pos + 1 : close]
        marks = [(s.group(1), s.start(), s.end()) for s in SECTION_RE.finditer(bbody)]
        sections = {"directives": body[: marks[0][1]] if marks else body}
        for k, (name, _s, e) in enumerate(marks):
            end = marks[k + 1][1] if k + 1 < len(marks) else len(body)
            sections[name] = body[e:end]
        out.append(ProcessBlock(m.group(1), path, body, sections))
    return out


def module_files(root: Path) -> list[Path]:
    """main.nf of every local module (modules/local/<name>/main.nf); nf-core modules are checked by nf-core lint."""
    local = root / "modules" / "local"
    return sorted(f for f in nextflow_files(root, (".nf",)) if f.parent.parent == local and f.name == "main.nf")


def all_processes(root: Path) -> list[ProcessBlock]:
    procs = []
    for f in module_files(root):
        try:
            procs.extend(find_processes(f))
        except LexError:
            continue  # reported by check_syntax
    return procs


def _directive(directives: str, name: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(rf"(?m)^\s*{name}\b\s*(.*)$", directives)]


def check_processes(root: Path = ROOT) -> list[Finding]:
    findings = []
    for p in all_processes(root):
        where = f"{_rel(root, p.path)}:{p.name}"
        d = p.sections["directives"]
        for directive in ("tag", "label", "conda"):
            if not _directive(d, directive):
                findings.append(Finding("process", where, f"missing '{directive}' directive"))
        for c in _directive(d, "container"):
            findings.append(Finding("process", where, f"container is named once in nextflow.config (process.container), not in the module: {c}"))
        for c in _directive(d, "conda"):
            if c != '"${moduleDir}/environment.yml"':
                findings.append(Finding("process", where, 'conda must be "${moduleDir}/environment.yml", got ' + c))
            elif not (p.path.parent / "environment.yml").is_file():
                findings.append(Finding("process", where, "conda file environment.yml does not exist"))
        out = p.sections.get("output", "")
        if not re.search(r"""eval\(['"]virnucpro --version[^)]*\)\s*,\s*topic:\s*versions\s*,\s*emit:\s*versions_virnucpro""", out):
            findings.append(Finding("process", where, "no `tuple val(...), val('virnucpro'), eval('virnucpro --version ...'), topic: versions, emit: versions_virnucpro` output"))
        if "versions.yml" in p.body:
            findings.append(Finding("process", where, "versions.yml is replaced by the versions topic (eval output)"))
        for section in ("script", "stub"):
            if section not in p.sections:
                findings.append(Finding("process", where, f"missing '{section}:' block"))
            elif '"""' not in p.sections[section]:
                findings.append(Finding("process", where, f"'{section}:' block has no script string"))
        if "script" in p.sections:
            cmds = [c for c in virnucpro_commands(p.sections["script"]) if c.tokens[1:2] != ["--version"]]
            if len(cmds) != 1:
                findings.append(Finding("process", where, f"expected exactly one 'virnucpro <subcommand>' call, found {len(cmds)}"))
            if "task.ext.args" not in p.sections["script"]:
                findings.append(Finding("process", where, "script does not take options from task.ext.args"))
    return findings


# --------------------------------------------------------------------------------------------------------------
# (c) labels
# --------------------------------------------------------------------------------------------------------------

def configured_labels(config: Path) -> set[str]:
    blanked_code = lex(config.read_text())
    text = config.read_text()
    labels: set[str] = set()
    for m in re.finditer(r"withLabel\s*:", blanked_code):
        rest = text[m.end() :].lstrip()
        sel = re.match(r"""['"]([^'"]+)['"]|([\w|]+)""", rest)
        if sel:
            labels.update((sel.group(1) or sel.group(2)).split("|"))
    return labels


def process_labels(root: Path) -> dict[str, set[str]]:
    import reftrace

    out: dict[str, set[str]] = {}
    for f in module_files(root):
        mod = reftrace_module(f)
        if isinstance(mod, reftrace.ParseError):
            continue
        for proc in mod.processes:
            out[f"{_rel(root, f)}:{proc.name}"] = {lab.value for lab in proc.labels}
    return out


def check_labels(root: Path = ROOT) -> list[Finding]:
    base = root / "conf" / "base.config"
    if not base.is_file():
        return [Finding("labels", "conf/base.config", "missing")]
    configured = configured_labels(base)
    findings = []
    for where, labels in process_labels(root).items():
        for label in sorted(labels - configured):
            findings.append(Finding("labels", where, f"label '{label}' is not configured in conf/base.config"))
    return findings


# --------------------------------------------------------------------------------------------------------------
# (d) command lines vs the CLI contract
# --------------------------------------------------------------------------------------------------------------

PLACEHOLDER = "NFVAR{}X"
_PLACEHOLDER_RE = re.compile(r"NFVAR(\d+)X")


@dataclass
class Command:
    tokens: list[str]
    exprs: list[str]  # Groovy expression of each placeholder index
    text: str


def _substitute(script: str) -> tuple[str, list[str]]:
    """Nextflow script string -> shell text with Groovy interpolations replaced by placeholders."""
    exprs: list[str] = []
    out, i, n = [], 0, len(script)
    while i < n:
        c = script[i]
        if c == "\\" and i + 1 < n:
            nxt = script[i + 1]
            if nxt == "\n":  # Groovy line continuation inside the string: nothing
                i += 2
                continue
            out.append(nxt if nxt in "$\\\"'" else c + nxt)  # \$ -> $ (bash), \\ -> \ (bash)
            i += 2
            continue
        if script.startswith("${", i):
            j = closing_brace(script, i + 1)
            exprs.append(script[i + 2 : j].strip())
            out.append(PLACEHOLDER.format(len(exprs) - 1))
            i = j + 1
            continue
        m = re.match(r"\$([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)", script[i:])
        if c == "$" and m:
            exprs.append(m.group(1))
            out.append(PLACEHOLDER.format(len(exprs) - 1))
            i += m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out), exprs


def script_strings(section: str) -> list[str]:
    return re.findall(r'"""(.*?)"""', section, re.S)


def virnucpro_commands(section: str) -> list[Command]:
    """Every ``virnucpro ...`` invocation in the triple-quoted strings of a script section."""
    cmds = []
    for s in script_strings(section):
        shell, exprs = _substitute(s)
        shell = re.sub(r"\\\n", " ", shell)  # bash line continuations
        for line in shell.splitlines():
            for m in re.finditer(r"(?:^|\$\(|[;&|])\s*(virnucpro(?:\s[^|;)&\n]*)?)(?=$|[|;)&])", line):
                try:
                    tokens = [t for t in shlex.split(m.group(1)) if not re.match(r"^\d*[<>]", t)]  # drop redirections
                except ValueError as exc:
                    tokens = ["virnucpro", f"<unparseable: {exc}>"]
                cmds.append(Command(tokens, exprs, m.group(1).strip()))
    return cmds


def _subparser(parser: argparse.ArgumentParser, names: list[str]) -> argparse.ArgumentParser | None:
    p = parser
    for name in names:
        sub = next((a for a in p._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or name not in sub.choices:
            return None
        p = sub.choices[name]
    return p


def _command_path(parser: argparse.ArgumentParser, tokens: list[str]) -> list[str]:
    """Leading sub-command names of a command line (['models', 'download'], ['prepare'], ...)."""
    names, p = [], parser
    for tok in tokens:
        sub = next((a for a in p._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or tok not in sub.choices:
            break
        names.append(tok)
        p = sub.choices[tok]
    return names


def _plausible(action: argparse.Action | None) -> str:
    if action is None:
        return "x.fa"
    if action.choices:
        return str(list(action.choices)[0])
    if action.type in (int, float):
        return "1"
    return "x"


def _option_action(parser: argparse.ArgumentParser, opt: str) -> argparse.Action | None:
    return parser._option_string_actions.get(opt)


def _fill(tokens: list[str], parser: argparse.ArgumentParser | None, extra: dict[str, list[str]]) -> list[str]:
    """Replace placeholders: ``args`` -> ``extra['args']`` tokens, option values by the option's type."""
    out: list[str] = []
    for tok in tokens:
        whole = _PLACEHOLDER_RE.fullmatch(tok)
        if whole and extra.get("__expr__", {}).get(int(whole.group(1))) in extra:  # type: ignore[union-attr]
            out.extend(extra[extra["__expr__"][int(whole.group(1))]])  # type: ignore[index]
            continue
        if whole:
            prev = out[-1] if out else ""
            action = _option_action(parser, prev) if parser and prev.startswith("-") else None
            out.append(_plausible(action) if action is not None and action.nargs != 0 else "x.fa")
            continue
        out.append(_PLACEHOLDER_RE.sub("x", tok))
    return out


def parse_ok(argv: list[str]) -> str | None:
    """None when build_parser() accepts argv, else argparse's message."""
    from virnucpro.cli import build_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {exc.code}"
    return None


def modules_config_args(root: Path) -> dict[str, list[str]]:
    """Process name -> ext.args closure/string texts from conf/modules.config (withName selectors split on '|')."""
    cfg = root / "conf" / "modules.config"
    if not cfg.is_file():
        return {}
    text = cfg.read_text()
    blanked = lex(text)
    out: dict[str, list[str]] = {}
    for m in re.finditer(r"withName\s*:", blanked):
        sel = re.match(r"""\s*['"]([^'"]+)['"]|\s*([\w|]+)""", text[m.end() :])
        brace = blanked.find("{", m.end())
        if not sel or brace < 0:
            continue
        block_end = match_brace(blanked, brace)
        block, bblock = text[brace + 1 : block_end], blanked[brace + 1 : block_end]
        args_texts = []
        for a in re.finditer(r"ext\.args\s*=\s*", bblock):
            start = a.end()
            if bblock[start] == "{":
                end = match_brace(bblock, start)
                args_texts.append(block[start : end + 1])
            else:
                args_texts.append(block[start:].splitlines()[0])
        for name in (sel.group(1) or sel.group(2)).split("|"):
            out.setdefault(name.strip().split(":")[-1], []).extend(args_texts)
    return out


def option_groups(args_text: str) -> list[list[str]]:
    """'--a x --b' fragments found in the string literals of an ext.args closure -> [['--a','PH'], ['--b']]."""
    groups: list[list[str]] = []
    for lit in re.findall(r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'', args_text):
        s = lit[0] or lit[1]
        shell, _ = _substitute(s)
        try:
            toks = shlex.split(shell)
        except ValueError:
            continue
        for tok in toks:
            if tok.startswith("--"):
                groups.append([tok])
            elif groups and tok:
                groups[-1].append(tok)
    return groups


def check_cli_commands(root: Path = ROOT) -> list[Finding]:
    from virnucpro.cli import build_parser

    parser = build_parser()
    ext_args = modules_config_args(root)
    findings = []
    for p in all_processes(root):
        where = f"{_rel(root, p.path)}:{p.name}"
        for section in ("script", "stub"):
            for cmd in virnucpro_commands(p.sections.get(section, "")):
                names = _command_path(parser, cmd.tokens[1:])
                sub = _subparser(parser, names) if names else parser
                expr_index = {k: e for k, e in enumerate(cmd.exprs)}
                base = _fill(cmd.tokens[1:], sub, {"__expr__": expr_index, "args": []})  # type: ignore[dict-item]
                err = parse_ok(base)
                if err:
                    findings.append(Finding("cli", where, f"{section}: `{cmd.text}` -> {base}: {err}"))
                    continue
                if section != "script" or not names:
                    continue
                # each option group of this process' ext.args, appended to the command on its own
                # (groups may be alternatives of a ternary, e.g. --shards vs --tokens-per-shard)
                for args_text in ext_args.get(p.name, []):
                    for group in option_groups(args_text):
                        filled = _fill(group, sub, {})
                        err = parse_ok(base + filled)
                        if err:
                            findings.append(Finding("cli", where, f"ext.args option {' '.join(group)} -> {filled}: {err}"))
    return findings


# --------------------------------------------------------------------------------------------------------------
# (e) schema
# --------------------------------------------------------------------------------------------------------------

def schema_params(schema: dict) -> dict[str, dict]:
    props = dict(schema.get("properties", {}))
    for group in schema.get("$defs", schema.get("definitions", {})).values():
        props.update(group.get("properties", {}))
    return props


def used_params(root: Path) -> dict[str, set[str]]:
    """params.X names used in .nf/.config code (comments ignored) and param names assigned in params { } blocks."""
    import reftrace

    used: dict[str, set[str]] = {}
    for f in nextflow_files(root):
        if f.name.endswith(".nf.test"):
            continue
        text = f.read_text()
        try:
            code = _code_without_comments(text)
        except LexError:
            continue
        if "tests" in f.relative_to(root).parts:
            continue  # nf-test settings (tests/nextflow.config) are not pipeline parameters
        for m in re.finditer(r"\bparams\.([A-Za-z_]\w*)\b(?!\s*\()", code):
            used.setdefault(m.group(1), set()).add(_rel(root, f))
        for name in config_param_defaults(f).keys() if f.suffix == ".config" else ():
            used.setdefault(name, set()).add(_rel(root, f))
        if f.suffix == ".nf":
            mod = reftrace_module(f)
            if not isinstance(mod, reftrace.ParseError):
                for prm in mod.params:
                    used.setdefault(prm.name, set()).add(_rel(root, f))
    return used


def _code_without_comments(text: str) -> str:
    """Text with comments blanked but strings kept (params are often used inside GStrings)."""
    return lex(text, keep_strings=True)


_LITERAL_RE = re.compile(r"""^\s*([A-Za-z_]\w*)\s*=\s*(.+?)\s*$""")


def _literal(value: str) -> tuple[bool, object]:
    """(is_literal, python value) for a Groovy literal on the right of '='."""
    v = value.strip().rstrip(";")
    if v == "null":
        return True, None
    if v in ("true", "false"):
        return True, v == "true"
    if re.fullmatch(r"-?\d+", v):
        return True, int(v)
    if re.fullmatch(r"-?\d+\.\d+", v):
        return True, float(v)
    m = re.fullmatch(r"""'([^'\\]*)'|"([^"\\$]*)\"""", v)
    if m:
        return True, m.group(1) if m.group(1) is not None else m.group(2)
    return False, v


def config_param_defaults(config: Path, blocks_only: bool = False) -> dict[str, object]:
    """Literal values assigned in ``params { }`` blocks and ``params.x = ...`` lines of a config file.

    Non-literal values (GStrings with ${projectDir}, expressions) map to the marker string '<expr>'.
    """
    try:
        text = _code_without_comments(config.read_text())
        blanked = lex(config.read_text())
    except LexError:
        return {}
    values: dict[str, object] = {}
    for m in re.finditer(r"(?m)^\s*params\s*\{", blanked):
        end = match_brace(blanked, m.end() - 1)
        block = text[m.end() : end]
        bblock = blanked[m.end() : end]
        for line, bline in zip(block.splitlines(), bblock.splitlines()):
            lm = _LITERAL_RE.match(bline)
            if lm:
                ok, val = _literal(line[line.index("=") + 1 :])
                values[lm.group(1)] = val if ok else "<expr>"
    for m in re.finditer(r"(?m)^\s*params\.([A-Za-z_]\w*)\s*=\s*(.+)$", "" if blocks_only else blanked):
        line = text[m.start() : m.end()]
        ok, val = _literal(line.split("=", 1)[1])
        values[m.group(1)] = val if ok else "<expr>"
    return values


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _type_ok(value: object, schema_type: str | list[str]) -> bool:
    types = schema_type if isinstance(schema_type, list) else [schema_type]
    if value is None:
        return True  # unset optional parameter
    t = _JSON_TYPES[type(value)]
    return t in types or (t == "integer" and "number" in types)


def check_schema(root: Path = ROOT) -> list[Finding]:
    import jsonschema

    findings = []
    schemas = {}
    for name in ("nextflow_schema.json", "assets/schema_input.json"):
        f = root / name
        try:
            schema = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            findings.append(Finding("schema", name, f"not readable JSON: {exc}"))
            continue
        if schema.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
            findings.append(Finding("schema", name, f"$schema must be draft 2020-12 (nf-schema 2), got {schema.get('$schema')}"))
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            findings.append(Finding("schema", name, f"invalid JSON Schema: {exc.message}"))
            continue
        schemas[name] = schema
    if "nextflow_schema.json" not in schemas:
        return findings
    schema = schemas["nextflow_schema.json"]
    props = schema_params(schema)
    for ref in schema.get("allOf", []):
        target = ref.get("$ref", "").split("/")[-1]
        if target not in schema.get("$defs", {}):
            findings.append(Finding("schema", "nextflow_schema.json", f"allOf references missing $defs/{target}"))
    for name in set(schema.get("$defs", {})) - {r.get("$ref", "").split("/")[-1] for r in schema.get("allOf", [])}:
        findings.append(Finding("schema", "nextflow_schema.json", f"$defs/{name} is not referenced in allOf (its params would not be validated)"))
    for name, files in sorted(used_params(root).items()):
        if name not in props:
            findings.append(Finding("schema", ", ".join(sorted(files)), f"params.{name} is not described in nextflow_schema.json"))
    for cfg in nextflow_files(root, (".config",)):
        defaults = config_param_defaults(cfg, blocks_only=True) if cfg == root / "nextflow.config" else {}
        for name, value in config_param_defaults(cfg).items():
            if name not in props or value == "<expr>":
                continue
            spec = props[name]
            if "type" in spec and not _type_ok(value, spec["type"]):
                findings.append(Finding("schema", _rel(root, cfg), f"params.{name} = {value!r} does not have schema type {spec['type']}"))
            if "enum" in spec and value is not None and value not in spec["enum"]:
                findings.append(Finding("schema", _rel(root, cfg), f"params.{name} = {value!r} not in schema enum {spec['enum']}"))
            if name in defaults and "default" in spec and defaults[name] != spec["default"]:
                findings.append(Finding("schema", _rel(root, cfg), f"params.{name} default {defaults[name]!r} != schema default {spec['default']!r}"))
    nf_defaults = config_param_defaults(root / "nextflow.config", blocks_only=True) if (root / "nextflow.config").is_file() else {}
    for name in props:
        if name not in nf_defaults:
            findings.append(Finding("schema", "nextflow.config", f"schema parameter {name} has no default in nextflow.config params"))
    # the test samplesheet must satisfy the samplesheet schema (nf-schema formats/'exists' are not checked here)
    # the example samplesheets (.csv and .tsv) satisfy the samplesheet schema (nf-schema formats/'exists' not checked)
    import csv

    for name, delimiter in (("samplesheet.csv", ","), ("samplesheet.tsv", "\t")):
        sheet = root / "assets" / name
        if "assets/schema_input.json" in schemas and sheet.is_file():
            rows = list(csv.DictReader(sheet.read_text().splitlines(), delimiter=delimiter))
            for err in jsonschema.Draft202012Validator(schemas["assets/schema_input.json"]).iter_errors(rows):
                findings.append(Finding("schema", f"assets/{name}", err.message))
    return findings


# --------------------------------------------------------------------------------------------------------------
# (f) includes
# --------------------------------------------------------------------------------------------------------------

def defined_names(path: Path) -> set[str]:
    """Processes, named workflows and functions a .nf file defines (top-level declarations, read lexically)."""
    code = lex(path.read_text())
    names = set(re.findall(r"(?m)^(?:process|workflow)\s+([A-Za-z_]\w*)\s*\{", code))
    names |= set(re.findall(r"(?m)^def\s+(?:[\w<>\[\], ]+\s+)?([A-Za-z_]\w*)\s*\(", code))
    return names


def declared_plugins(root: Path) -> set[str]:
    cfg = root / "nextflow.config"
    if not cfg.is_file():
        return set()
    return {m.group(1) for m in re.finditer(r"""id\s+['"]([\w-]+)(?:@[^'"]*)?['"]""", cfg.read_text())}


def check_includes(root: Path = ROOT) -> list[Finding]:
    import reftrace

    findings = []
    plugins = declared_plugins(root)
    for f in nextflow_files(root, (".nf",)):
        if {"nf-core"} & set(f.relative_to(root).parts[:2]):
            continue  # vendored nf-core components: checked by nf-core lint
        mod = reftrace_module(f)
        if isinstance(mod, reftrace.ParseError):
            continue
        for inc in mod.includes:
            src = inc.from_module
            where = f"{_rel(root, f)} (include from '{src}')"
            if src.startswith("plugin/"):
                if src.split("/", 1)[1] not in plugins:
                    findings.append(Finding("include", where, f"plugin {src} is not declared in nextflow.config plugins block"))
                continue
            target = (f.parent / src).resolve()
            if target.is_dir():
                target = target / "main.nf"
            elif target.suffix != ".nf":
                target = target.with_name(target.name + ".nf")
            if not target.is_file():
                findings.append(Finding("include", where, f"file {target} does not exist"))
                continue
            names = defined_names(target)
            for item in inc.items:
                if item.name not in names:
                    findings.append(Finding("include", where, f"'{item.name}' is not defined in {_rel(root, target)}"))
    return findings


# --------------------------------------------------------------------------------------------------------------
# module layout (meta.yml, nf-test with -stub, gpu tags) and modules.config selectors
# --------------------------------------------------------------------------------------------------------------

def check_module_layout(root: Path = ROOT) -> list[Finding]:
    import yaml

    findings = []
    labels = process_labels(root)
    mod_root = root / "modules" / "local"
    for d in sorted(p for p in mod_root.iterdir() if p.is_dir()) if mod_root.is_dir() else []:
        rel = _rel(root, d)
        if not (d / "main.nf").is_file():
            findings.append(Finding("layout", rel, "missing main.nf"))
            continue
        try:
            meta = yaml.safe_load((d / "meta.yml").read_text())
            if not isinstance(meta, dict) or meta.get("name") != d.name or "input" not in meta or "output" not in meta:
                findings.append(Finding("layout", f"{rel}/meta.yml", "needs name (= folder name), input and output"))
        except (OSError, yaml.YAMLError) as exc:
            findings.append(Finding("layout", f"{rel}/meta.yml", f"missing or invalid: {exc}"))
        test = d / "tests" / "main.nf.test"
        if not test.is_file():
            findings.append(Finding("layout", rel, "missing tests/main.nf.test"))
            continue
        ttext = test.read_text()
        if not re.search(r"""options\s+['"]-stub['"]""", ttext):
            findings.append(Finding("layout", _rel(root, test), "no test with options '-stub'"))
        procs = {k.split(":")[1] for k in labels if k.startswith(f"{rel}/main.nf:")}
        for proc in procs:
            if not re.search(rf"""process\s+['"]{proc}['"]""", ttext):
                findings.append(Finding("layout", _rel(root, test), f"does not test process {proc}"))
        gpu = any("process_gpu" in labs for k, labs in labels.items() if k.startswith(f"{rel}/main.nf:"))
        has_gpu_tag = re.search(r"""tag\s+['"]gpu['"]""", ttext) is not None
        if gpu and not has_gpu_tag:
            findings.append(Finding("layout", _rel(root, test), "GPU module (label process_gpu) test is not tagged 'gpu'"))
    known = {k.split(":")[1] for k in labels}
    for f in (root / "modules").rglob("main.nf") if (root / "modules").is_dir() else []:
        known |= set(re.findall(r"(?m)^process\s+(\w+)", f.read_text()))
    for name in modules_config_args(root).keys() | _with_names(root):
        if name not in known:
            findings.append(Finding("layout", "conf/modules.config", f"withName '{name}' matches no process"))
    return findings


def _with_names(root: Path) -> set[str]:
    cfg = root / "conf" / "modules.config"
    if not cfg.is_file():
        return set()
    text = cfg.read_text()
    names = set()
    for m in re.finditer(r"""withName\s*:\s*(?:['"]([^'"]+)['"]|([\w|]+))""", text):
        names.update(n.split(":")[-1] for n in (m.group(1) or m.group(2)).split("|"))
    return names


# --------------------------------------------------------------------------------------------------------------
# strict syntax (Nextflow >= 26.04 parses with it by default; docs/strict-syntax.mdx of the Nextflow repository)
# --------------------------------------------------------------------------------------------------------------

_CONFIG_FORBIDDEN = re.compile(r"^\s*(def|if|else|try|catch|for|while|switch|import|class|return)\b")
_SCRIPT_TOPLEVEL_OK = re.compile(
    r"^(include\s*\{|process\s+\w+\s*\{|workflow\b|def\s+\w+\s*\(|params\s*[.{]|nextflow\.(enable|preview)\.\w+\s*=|enum\s+\w+|output\s*\{|record\s+\w+)"
)
_SCRIPT_FORBIDDEN = [
    (re.compile(r"^\s*import\s+[\w.]+", re.M), "import declarations are not supported (use the fully qualified name)"),
    (re.compile(r"^\s*class\s+\w+", re.M), "class declarations are not supported"),
    (re.compile(r"\bswitch\s*\("), "switch statements are not supported"),
    (re.compile(r"^\s*for\s*\(", re.M), "for loops are not supported"),
    (re.compile(r"^\s*while\s*\(", re.M), "while loops are not supported"),
    (re.compile(r"\bChannel\s*\."), "`Channel` is deprecated: use `channel`"),
    (re.compile(r"\baddParams\s*\("), "include ... addParams is not supported"),
    (re.compile(r"\$/"), "dollar-slashy strings are not supported"),
]
_CLOSURE_BEFORE = set("=(,[?:>!&|+") | {"return"}


def _brace_kinds(blanked: str) -> list[tuple[int, int, str]]:
    """(open, close, kind) of every {...} in lexed text; kind 'closure' when the brace opens a value, else 'block'."""
    spans, stack = [], []
    for i, c in enumerate(blanked):
        if c == "{":
            j = i - 1
            while j >= 0 and blanked[j] in " \t\r\n":
                j -= 1
            prev = blanked[j] if j >= 0 else ""
            word = re.search(r"(\w+)\s*$", blanked[: j + 1])
            kind = "closure" if (prev in _CLOSURE_BEFORE or (word and word.group(1) == "return")) else "block"
            # a block name is an identifier or a quoted selector ('withName: "X" {'); anything else is a value
            stack.append((i, kind))
        elif c == "}" and stack:
            o, kind = stack.pop()
            spans.append((o, i, kind))
    return spans


def _innermost(spans: list[tuple[int, int, str]], pos: int) -> str | None:
    best = None
    for o, c, kind in spans:
        if o < pos < c and (best is None or o > best[0]):
            best = (o, kind)
    return best[1] if best else None


def check_strict_syntax(root: Path = ROOT) -> list[Finding]:
    """Rules of the strict parser that the legacy one let through (the ones this pipeline could break).

    Config files: only assignments, blocks and includeConfig; statements (def, if, try, ...) only inside closures.
    Scripts: top level holds only declarations (include, params, process, workflow, functions, feature flags);
    no import/class/switch/for/while, no `Channel.`, no addParams, no dollar-slashy strings, no implicit `it`.
    Modules (modules/*): no `params` at all (inputs and task.ext only).
    """
    findings = []
    for f in nextflow_files(root) + [x for x in (root / "modules").rglob("*.nf") if "tests" not in x.parts] if (root / "modules").is_dir() else nextflow_files(root):
        if f.name.endswith(".nf.test"):
            continue
        rel = _rel(root, f)
        text = f.read_text()
        try:
            blanked = lex(text)
        except LexError:
            continue  # reported by check_syntax
        spans = _brace_kinds(blanked)
        if f.suffix == ".config":
            offset = 0
            for line in blanked.splitlines(keepends=True):
                m = _CONFIG_FORBIDDEN.match(line)
                if m and _innermost(spans, offset + m.start(1)) != "closure":
                    findings.append(Finding("strict", f"{rel}:{_line_of(blanked, offset)}",
                                            f"config statement `{m.group(1)}` outside a closure (only assignments, blocks and includeConfig are allowed)"))
                offset += len(line)
            continue
        # scripts
        offset = 0
        for line in blanked.splitlines(keepends=True):
            stripped = line.strip()
            if stripped and not stripped.startswith("#!") and _innermost(spans, offset + len(line) - len(line.lstrip())) is None:
                if not _SCRIPT_TOPLEVEL_OK.match(stripped) and not stripped.startswith("}"):
                    findings.append(Finding("strict", f"{rel}:{_line_of(blanked, offset)}", f"top-level statement: {stripped[:60]}"))
            offset += len(line)
        for rx, msg in _SCRIPT_FORBIDDEN:
            for m in rx.finditer(blanked):
                findings.append(Finding("strict", f"{rel}:{_line_of(blanked, m.start())}", msg))
        for m in re.finditer(r"\{(?![^{}]*->)[^{}]*\bit\b[^{}]*\}", blanked):
            findings.append(Finding("strict", f"{rel}:{_line_of(blanked, m.start())}", "implicit closure parameter `it`: declare it"))
        if "modules" in f.relative_to(root).parts:
            for m in re.finditer(r"\bparams\.", lex(text, keep_strings=True)):
                findings.append(Finding("strict", f"{rel}:{_line_of(text, m.start())}", "params used inside a module (pass it as an input or task.ext)"))
    return findings


# --------------------------------------------------------------------------------------------------------------
# contracts between modules, workflow and config (what a typo would break at run time)
# --------------------------------------------------------------------------------------------------------------

def _strip_comments(text: str) -> str:
    return lex(text, keep_strings=True)


def _block(text: str, header_regex: str) -> str:
    """Body of the first `<header> {...}` block (comments removed); '' when absent."""
    code = _strip_comments(text)
    blanked = lex(text)
    m = re.search(header_regex + r"\s*\{", code)
    if not m:
        return ""
    end = match_brace(blanked, m.end() - 1)
    return code[m.end() : end]


def check_gpu_contract(root: Path = ROOT) -> list[Finding]:
    """GPU off by default; under -profile gpu each process_gpu task asks for one GPU and gets it into the container."""
    findings = []
    base = (root / "conf" / "base.config").read_text()
    gpu_label = _block(base, r"withLabel\s*:\s*['\"]?process_gpu['\"]?")
    if not re.search(r"accelerator\s*=\s*\{\s*'gpu'\s+in\s+workflow\.profile\.tokenize\(\s*','\s*\)\s*\?\s*1\s*:\s*null\s*\}", gpu_label):
        findings.append(Finding("gpu", "conf/base.config", "process_gpu needs `accelerator = { 'gpu' in workflow.profile.tokenize(',') ? 1 : null }`"))
    cfg = (root / "nextflow.config").read_text()
    profiles = _block(cfg, r"(?m)^profiles")
    gpu = _block("profiles {" + profiles + "}", r"(?m)^\s*gpu")
    gpu_proc = _block(gpu, r"withLabel\s*:\s*['\"]?process_gpu['\"]?")
    opts = re.search(r"containerOptions\s*=\s*\{(.*?)\}", gpu_proc, re.S)
    if not opts or not re.search(r"workflow\.containerEngine\s*==\s*'docker'\s*\?\s*'--gpus all'", opts.group(1)) \
            or not re.search(r"\['singularity',\s*'apptainer'\]\s*\?\s*'--nv'", opts.group(1)):
        findings.append(Finding("gpu", "nextflow.config", "gpu profile: process_gpu containerOptions must give docker '--gpus all' and singularity/apptainer '--nv'"))
    if not re.search(r"withLabel\s*:\s*'process_gpu'\s*\{\s*container\s*=\s*\{\s*'gpu'\s+in\s+workflow\.profile\.tokenize\(','\)\s*\?\s*params\.container_gpu\s*:\s*params\.container_cpu\s*\}", cfg):
        findings.append(Finding("gpu", "nextflow.config", "process_gpu must use the CUDA image (params.container_gpu) under -profile gpu"))
    for engine in ("docker", "singularity", "apptainer"):
        if not re.search(rf"{engine}\.envWhitelist\s*=\s*'[^']*CUDA_VISIBLE_DEVICES", gpu):
            findings.append(Finding("gpu", "nextflow.config", f"gpu profile: {engine}.envWhitelist must pass CUDA_VISIBLE_DEVICES into the container"))
    for name, body in (("docker", _block("profiles {" + profiles + "}", r"(?m)^\s*docker")),):
        if "--gpus" in body:
            findings.append(Finding("gpu", "nextflow.config", f"{name} profile must not request GPUs (GPU off unless -profile gpu)"))
    slurm = _block("profiles {" + profiles + "}", r"(?m)^\s*slurm")
    if not re.search(r'clusterOptions\s*=\s*\{\s*task\.accelerator\s*\?\s*"--gres=gpu:\$\{task\.accelerator\.request\}"', slurm):
        findings.append(Finding("gpu", "nextflow.config", "slurm profile: GPU tasks need --gres=gpu:<task.accelerator.request>"))
    mods = (root / "conf" / "modules.config").read_text()
    embed = _block(mods, r"withName\s*:\s*'EMBED_DNA\|EMBED_PROTEIN'")
    if "task.accelerator ? '--device cuda' : '--device cpu'" not in embed:
        findings.append(Finding("gpu", "conf/modules.config", "embedding tasks: --device must follow task.accelerator (cuda = the GPU in CUDA_VISIBLE_DEVICES)"))
    if re.search(r"--device cuda:\d", mods + cfg):
        findings.append(Finding("gpu", "conf/modules.config", "a task pinned to one GPU index (--device cuda:N)"))
    return findings


def check_workflow_contract(root: Path = ROOT) -> list[Finding]:
    """Shards meet by join (never mix), samples are released by groupKey(id, number of embedded shards)."""
    findings = []
    wf_path = root / "workflows" / "virnucpro.nf"
    wf = _strip_comments(wf_path.read_text())
    if not re.search(r"MERGE\(\s*EMBED_DNA\.out\.h5\.join\(\s*EMBED_PROTEIN\.out\.h5\s*,\s*failOnDuplicate:\s*true,\s*failOnMismatch:\s*true\s*\)\s*\)", wf):
        findings.append(Finding("workflow", "workflows/virnucpro.nf", "MERGE must get EMBED_DNA.out.h5.join(EMBED_PROTEIN.out.h5, failOnDuplicate: true, failOnMismatch: true)"))
    if re.search(r"EMBED_(DNA|PROTEIN)\.out\.h5\s*\.mix\(", wf) or re.search(r"\.mix\(\s*EMBED_(DNA|PROTEIN)\.out\.h5", wf):
        findings.append(Finding("workflow", "workflows/virnucpro.nf", "embeddings mixed instead of joined: shards would pair at random"))
    if not re.search(r"groupKey\(\s*meta\.id\s*,\s*meta\.n_shards\s+as\s+int\s*\)", wf):
        findings.append(Finding("workflow", "workflows/virnucpro.nf", "groupKey must be groupKey(meta.id, meta.n_shards as int): a sample waits for all its shards"))
    if not re.search(r"n_shards:\s*kept\.size\(\)", wf):
        findings.append(Finding("workflow", "workflows/virnucpro.nf", "n_shards must count the shards actually embedded (kept.size())"))
    for needle in ("PREPARE.out.reads\n        .join(PREPARE.out.manifest", ".join(ch_samplesheet", ".join(ch_frames"):
        if needle not in wf:
            findings.append(Finding("workflow", "workflows/virnucpro.nf", f"SUMMARIZE inputs must meet by sample id with join: missing {needle!r}"))
    return findings


def _output_globs(p: ProcessBlock) -> list[tuple[str, bool]]:
    """(glob, optional) of every path(...) output of a process, ${...} replaced by '*'."""
    out = []
    for line in p.sections.get("output", "").splitlines():
        if line.strip().startswith("//"):
            continue
        optional = "optional: true" in line
        for m in re.finditer(r"""path\(?\s*["']([^"']+)["']""", line):
            out.append((re.sub(r"\$\{[^}]*\}", "*", m.group(1)), optional))
    return out


def _produced_names(p: ProcessBlock, section: str, known_outputs: dict[str, list[str]]) -> list[str]:
    """Relative paths the script (or stub) writes: --output values, shell redirects and touch/mkdir targets, plus
    the files a `virnucpro` subcommand writes into its --outdir/--dir (known_outputs: subcommand -> names)."""
    from virnucpro.cli import build_parser

    parser = build_parser()
    names: list[str] = []
    for cmd in virnucpro_commands(p.sections.get(section, "")):
        path = _command_path(parser, cmd.tokens[1:])
        toks = [_PLACEHOLDER_RE.sub("X", t) for t in cmd.tokens]
        for opt in ("--outdir", "--dir"):
            if opt in toks:
                d = toks[toks.index(opt) + 1]
                names += [f"{d}/{n}" for n in known_outputs.get(" ".join(path), [])]
    for s in script_strings(p.sections.get(section, "")):
        shell, exprs = _substitute(s)
        shell = re.sub(r"\\\n", " ", shell)
        shell = _PLACEHOLDER_RE.sub("X", shell)
        names += re.findall(r"--output\s+(\S+)", shell)
        names += re.findall(r"(?<![0-9&])>\s*([\w./X-]+)", shell)
        for m in re.finditer(r"(?m)^\s*(?:touch|mkdir -p)\s+(.+)$", shell):
            names += m.group(1).split()
    return names


def _glob_hits(glob: str, names: list[str]) -> bool:
    import fnmatch

    rx = re.compile(fnmatch.translate(glob).replace(".*", "[^/]*"))
    return any(rx.match(n) or rx.match(re.sub(r"X", "x", n)) for n in names)


def known_command_outputs() -> dict[str, list[str]]:
    """What each folder-writing subcommand writes, from the package itself (so a renamed output glob is caught)."""
    import tempfile

    from virnucpro.models import hub
    from virnucpro.summarize import OUTPUT_FILES

    with tempfile.TemporaryDirectory() as tmp:
        fa = Path(tmp) / "in.fa"
        fa.write_text(">r1\n" + "ACGTTGCAAGGCTTAACCGGTTAAGGCCTTAGGCATGCATGCATGCAAATTTGGGCCCAAAT" * 8 + "\n")
        from virnucpro.cli import main as cli_main

        with contextlib.redirect_stderr(io.StringIO()):
            cli_main(["prepare", str(fa), "--outdir", str(Path(tmp) / "out"), "--prefix", "X", "--chunk-length", "300", "--quiet"])
        prepared = sorted(str(f.relative_to(Path(tmp) / "out")) for f in (Path(tmp) / "out").rglob("*") if f.is_file())
    return {
        "prepare": prepared,
        "summarize": list(OUTPUT_FILES),
        "models download": ["dnabert-s", f"{hub.DEFAULT_ESM_NAME}.pt", f"{hub.DEFAULT_ESM_NAME}-contact-regression.pt",
                            "X_model.pth", hub.CHECKSUMS_NAME],
    }


def check_outputs(root: Path = ROOT, known_outputs: dict[str, list[str]] | None = None) -> list[Finding]:
    """Every output glob of a local module matches a file its script writes, and every required one a file its stub
    writes (a renamed glob or output file would otherwise only fail at run time: 'Missing output file(s)')."""
    known = known_outputs if known_outputs is not None else known_command_outputs()
    findings = []
    for p in all_processes(root):
        where = f"{_rel(root, p.path)}:{p.name}"
        script_names = _produced_names(p, "script", known)
        stub_names = _produced_names(p, "stub", known)
        for glob, optional in _output_globs(p):
            if not _glob_hits(glob, script_names):
                findings.append(Finding("outputs", where, f"output '{glob}' matches nothing the script writes ({sorted(set(script_names))})"))
            if not optional and not _glob_hits(glob, stub_names):
                findings.append(Finding("outputs", where, f"output '{glob}' matches nothing the stub writes"))
    return findings


def _meta_channels(meta: dict) -> tuple[list[str], list[str]]:
    def names(entries):
        out = []
        for e in entries:
            if isinstance(e, list):
                out.append(tuple(next(iter(x)) for x in e))
            else:
                out.append(next(iter(e)))
        return out
    return names(meta.get("input", [])), list(meta.get("output", {}))


def check_meta_yml(root: Path = ROOT) -> list[Finding]:
    """meta.yml lists the process' inputs (names, tuple structure) and output channels (emit names)."""
    import yaml

    findings = []
    for p in all_processes(root):
        meta_path = p.path.parent / "meta.yml"
        try:
            meta = yaml.safe_load(meta_path.read_text())
        except (OSError, yaml.YAMLError):
            continue  # reported by check_module_layout
        want_in = []
        for line in p.sections.get("input", "").splitlines():
            line = line.strip()
            if not line or line.startswith("//"):
                continue
            if line.startswith("tuple"):
                want_in.append(tuple(re.findall(r"(?:val|path)\(\s*(\w+)", line)))
            else:
                m = re.match(r"(?:val|path)\s+(\w+)", line)
                if m:
                    want_in.append(m.group(1))
        want_out = re.findall(r"emit:\s*(\w+)", p.sections.get("output", ""))
        got_in, got_out = _meta_channels(meta)
        if [x if isinstance(x, str) else tuple(x) for x in got_in] != want_in:
            findings.append(Finding("meta", _rel(root, meta_path), f"input {got_in} != process inputs {want_in}"))
        if sorted(got_out) != sorted(want_out):
            findings.append(Finding("meta", _rel(root, meta_path), f"output channels {sorted(got_out)} != emits {sorted(want_out)}"))
        if "versions" not in (meta.get("topics") or {}):
            findings.append(Finding("meta", _rel(root, meta_path), "topics.versions missing"))
    return findings


# --------------------------------------------------------------------------------------------------------------
# nf-test inputs: Nextflow refuses to stage two files under one name in a task
# --------------------------------------------------------------------------------------------------------------

def _groovy_value(text: str):
    """A Groovy list/map literal of an nf-test input (file(...) calls become their path) -> Python value."""
    import ast

    text = re.sub(r"""file\(\s*"([^"]+)"(?:\s*,\s*checkIfExists:\s*true)?\s*\)""", lambda m: repr(m.group(1)), text)
    text = re.sub(r"(?<=[\[,\s])(\w+)\s*:(?!/)", r"'\1':", text)
    # a [...] whose first element is a key is a map
    out, stack = [], []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "[":
            is_map = re.match(r"\[\s*'\w+'\s*:", text[i:]) is not None or text[i:i + 3] == "[:]"
            stack.append(is_map)
            out.append("{" if is_map else "[")
            if text[i:i + 3] == "[:]":
                out.append("}")
                stack.pop()
                i += 3
                continue
        elif c == "]":
            out.append("}" if stack.pop() else "]")
        else:
            out.append(c)
        i += 1
    return ast.literal_eval("".join(out))


def _staged_names(decl: str, value) -> list[tuple[str, str]]:
    """(stage pattern, base name) of every file a `path(x[, stageAs: '...'])` declaration receives."""
    m = re.search(r"""stageAs:\s*['"]([^'"]+)['"]""", decl)
    pattern = m.group(1) if m else "*"
    files = value if isinstance(value, list) else [value]
    return [(pattern, Path(str(f)).name) for f in files if isinstance(f, str)]


def check_test_staging(root: Path = ROOT) -> list[Finding]:
    """In each module nf-test, the files of one task input would not collide when staged: two files may share a
    name only where the input stages them with a '?' pattern (input/1/x, input/2/x)."""
    findings = []
    for p in all_processes(root):
        test = p.path.parent / "tests" / "main.nf.test"
        if not test.is_file():
            continue
        decls = [line.strip() for line in p.sections.get("input", "").splitlines()
                 if line.strip() and not line.strip().startswith("//")]
        for block in re.findall(r'process \{\s*"""(.*?)"""', test.read_text(), re.S):
            code = "\n".join(line for line in block.splitlines() if not line.strip().startswith("//"))
            for m in re.finditer(r"input\[(\d+)\]\s*=\s*(.+?)(?=\n\s*input\[|\Z)", code, re.S):
                k, raw = int(m.group(1)), m.group(2).strip()
                if k >= len(decls):
                    continue
                try:
                    value = _groovy_value(raw)
                except (ValueError, SyntaxError):
                    continue
                decl = decls[k]
                elements = re.findall(r"(?:val|path)\((?:[^()]|\([^()]*\))*\)", decl) if decl.startswith("tuple") else [decl]
                values = value if decl.startswith("tuple") else [value]
                staged: list[tuple[str, str]] = []
                for el, val in zip(elements, values):
                    if el.startswith("path"):
                        staged += _staged_names(el, val)
                seen: dict[str, str] = {}
                for pattern, name in staged:
                    target = name if "/" not in pattern else pattern.replace("*", name)
                    if "?" in pattern:
                        continue
                    if target in seen:
                        findings.append(Finding("staging", _rel(root, test), f"input[{k}] stages two files as '{target}' ({p.name})"))
                    seen[target] = pattern
    return findings


def check_project_paths(root: Path = ROOT) -> list[Finding]:
    """Every "${projectDir}/..." path named in a config or script exists in the pipeline (test inputs, models,
    assets): a moved file would otherwise only fail at run time."""
    findings = []
    for f in nextflow_files(root):
        code = _strip_comments(f.read_text())
        for m in re.finditer(r"\$\{projectDir\}/([\w./-]+)", code):
            rel = m.group(1).rstrip(".")
            if "$" in rel or rel.startswith("."):
                continue  # built from other values / a folder created at run time (.models)
            if not (root / rel).exists() and not (ROOT / rel).exists():
                findings.append(Finding("paths", _rel(root, f), "${projectDir}/" + rel + " does not exist"))
    return findings


CHECKS = {
    "syntax": check_syntax,
    "process": check_processes,
    "labels": check_labels,
    "cli": check_cli_commands,
    "schema": check_schema,
    "include": check_includes,
    "layout": check_module_layout,
    "strict": check_strict_syntax,
    "gpu": check_gpu_contract,
    "workflow": check_workflow_contract,
    "outputs": check_outputs,
    "meta": check_meta_yml,
    "staging": check_test_staging,
    "paths": check_project_paths,
}


def lint_all(root: Path = ROOT) -> list[Finding]:
    findings: list[Finding] = []
    for check in CHECKS.values():
        findings.extend(check(root))
    return findings


def main(argv: Iterable[str] | None = None) -> int:
    findings = lint_all(ROOT)
    for f in findings:
        print(f)
    print(f"{len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())


# --------------------------------------------------------------------------------------------------------------
# static reading of the config, in place of `nextflow config -o json` for the offline nf-core lint tests
# --------------------------------------------------------------------------------------------------------------

def static_config(root: Path = ROOT) -> dict:
    """Nested dict of the settings in nextflow.config and the files it includes at top level (not profiles).

    Literals keep their value; closures and other expressions are kept as their source text (truthy), which is
    what the nf-core lint tests look at (presence, strings such as manifest.*, plugin ids). Not Nextflow: it does
    not evaluate expressions or profiles.
    """
    config: dict = {}

    def put(path: list[str], value: object) -> None:
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                return
        node[path[-1]] = value

    def read(path: Path) -> None:
        text = path.read_text()
        code = _strip_comments(text)
        blanked = lex(text)
        spans = _brace_kinds(blanked)
        stack: list[str] = []
        closing: list[int] = []
        pos = 0
        for line, bline in zip(code.splitlines(keepends=True), blanked.splitlines(keepends=True)):
            while closing and pos > closing[-1]:
                closing.pop()
                stack.pop()
            kind = _innermost(spans, pos + len(bline) - len(bline.lstrip()))
            if kind == "closure":
                pos += len(line)
                continue
            inc = re.match(r"\s*includeConfig\s+'([^']+)'", line)
            if inc and not stack:
                target = root / inc.group(1)
                if target.is_file():
                    read(target)
            blk = re.match(r"\s*([\w.]+)\s*\{\s*$", bline) or re.match(r"\s*(withName|withLabel)\s*:\s*['\"]?([^'\"{]+?)['\"]?\s*\{", line)
            if blk and "=" not in bline.split("{")[0]:
                name = blk.group(1) if blk.lastindex == 1 else f"{blk.group(1)}:{blk.group(2).strip()}"
                brace = pos + bline.index("{")
                end = next((c for o, c, _k in spans if o == brace), None)
                if end is not None:
                    stack.append(name)
                    closing.append(end)
            plugin = re.match(r"\s*id\s+'([^']+)'", line)
            if plugin and stack == ["plugins"]:
                config.setdefault("plugins", []).append(plugin.group(1))
            asg = re.match(r"\s*([A-Za-z_][\w.]*)\s*=\s*(.+?)\s*$", line)
            if asg and "profiles" not in stack[:1] and asg.group(2) == "[":
                # a multi-line list literal (manifest.contributors): Groovy maps -> Python literals
                start = pos + line.index("[")
                depth, end = 0, start
                for end in range(start, len(blanked)):
                    depth += {"[": 1, "]": -1}.get(blanked[end], 0)
                    if depth == 0:
                        break
                body = re.sub(r"(?m)(^|[\[,{\s])(\w+)\s*:", r"\1'\2':", code[start : end + 1])
                body = body.replace("[:]", "{}")
                body = re.sub(r"\[(\s*'\w+':)", r"{\1", body)
                try:
                    import ast

                    value = ast.literal_eval(re.sub(r"\{((?:[^{}\[\]]|\[[^\]]*\])*)\]", r"{\1}", body))
                    put([s for part in stack + [asg.group(1)] for s in part.split(".")], value)
                except (ValueError, SyntaxError):
                    pass
                pos += len(line)
                continue
            if asg and "profiles" not in stack[:1]:
                ok, value = _literal(asg.group(2))
                if not ok:
                    value = asg.group(2)
                    m = re.fullmatch(r'"""(.*)"""|"([^"]*)"', value.strip())
                    if m:
                        value = m.group(1) if m.group(1) is not None else m.group(2)
                put([s for part in stack + [asg.group(1)] for s in part.split(".")], value)
            pos += len(line)

    read(root / "nextflow.config")
    params = config.get("params", {})
    for key, value in list(params.items()):
        if isinstance(value, str):
            params[key] = re.sub(r"\$\{params\.(\w+)\}", lambda m: str(params.get(m.group(1), m.group(0))), value)
    return config
