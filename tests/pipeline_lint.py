"""Static checks of the Nextflow layer (no Nextflow needed); used by tests/test_pipeline_static.py.

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

ROOT = Path(__file__).resolve().parents[1]
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

def reftrace_parse(path: Path) -> str | None:
    """reftrace parse error message for a .nf or .config file, or None when it parses."""
    import reftrace

    if path.suffix == ".nf":
        res = reftrace.Module.from_file(str(path))
        return res.error if isinstance(res, reftrace.ParseError) else None
    res = reftrace.ConfigFile.from_file(str(path))
    return str(res.error).strip() if res.error is not None else None


def check_syntax(root: Path = ROOT) -> list[Finding]:
    findings = []
    for f in nextflow_files(root):
        err = reftrace_parse(f)
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
    return sorted(f for f in nextflow_files(root, (".nf",)) if f.parts[-2:-1] != ("tests",))


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
        for directive in ("tag", "label", "container", "conda"):
            if not _directive(d, directive):
                findings.append(Finding("process", where, f"missing '{directive}' directive"))
        for c in _directive(d, "container"):
            if "params.container" not in c:
                findings.append(Finding("process", where, f"container must use params.container, got {c}"))
        for c in _directive(d, "conda"):
            m = re.search(r"""["'](.+?)["']""", c)
            if m:
                target = (p.path.parent / m.group(1).replace("${moduleDir}", "").replace("$moduleDir", "").lstrip("/"))
                if not target.resolve().is_file():
                    findings.append(Finding("process", where, f"conda file {m.group(1)} does not exist"))
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
        mod = reftrace.Module.from_file(str(f))
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
            depth, j = 0, i + 1
            while j < n:
                if script[j] == "{":
                    depth += 1
                elif script[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
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
        for m in re.finditer(r"\bparams\.([A-Za-z_]\w*)", code):
            used.setdefault(m.group(1), set()).add(_rel(root, f))
        for name in config_param_defaults(f).keys() if f.suffix == ".config" else ():
            used.setdefault(name, set()).add(_rel(root, f))
        if f.suffix == ".nf":
            mod = reftrace.Module.from_file(str(f))
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
    sheet = root / "assets" / "samplesheet_test.csv"
    if "assets/schema_input.json" in schemas and sheet.is_file():
        import csv

        rows = list(csv.DictReader(sheet.read_text().splitlines()))
        for err in jsonschema.Draft202012Validator(schemas["assets/schema_input.json"]).iter_errors(rows):
            findings.append(Finding("schema", "assets/samplesheet_test.csv", err.message))
    return findings


# --------------------------------------------------------------------------------------------------------------
# (f) includes
# --------------------------------------------------------------------------------------------------------------

def defined_names(path: Path) -> set[str]:
    import reftrace

    names: set[str] = set()
    mod = reftrace.Module.from_file(str(path))
    if not isinstance(mod, reftrace.ParseError):
        names |= {p.name for p in mod.processes} | {w.name for w in mod.workflows if w.name}
    names |= set(re.findall(r"(?m)^\s*def\s+(?:[\w<>\[\], ]+\s+)?([A-Za-z_]\w*)\s*\(", path.read_text()))
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
        mod = reftrace.Module.from_file(str(f))
        if isinstance(mod, reftrace.ParseError):
            continue
        for inc in mod.includes:
            src = inc.from_module
            where = f"{_rel(root, f)} (include from '{src}')"
            if src.startswith("plugin/"):
                if src.split("/", 1)[1] not in plugins:
                    findings.append(Finding("include", where, f"plugin {src} is not declared in nextflow.config plugins {{}}"))
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


CHECKS = {
    "syntax": check_syntax,
    "process": check_processes,
    "labels": check_labels,
    "cli": check_cli_commands,
    "schema": check_schema,
    "include": check_includes,
    "layout": check_module_layout,
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
