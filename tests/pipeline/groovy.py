"""A small, honest Groovy-subset evaluator: enough to render a Nextflow module's `script:`/`stub:` block and the
closures of conf/modules.config the way Nextflow would, and nothing more.

WHY: Nextflow cannot run on our machines, so the pipeline tests render each module's command line themselves and run
it with bash. A renderer that guessed would hide exactly the mistakes the tests exist to catch, so every construct
outside the subset (statements in closures, ranges, unknown methods, unknown names) raises :class:`Unsupported`
instead of rendering something.

Subset: literals (numbers with an optional L, '...' strings, "..." / triple-quoted GStrings with ``${expr}`` and
``$name.prop``), lists and maps ``[a, b]`` / ``[k: v]``, closures ``{ [params ->] expression }``, property access
(``?.`` too), indexing, calls of a fixed set of methods, ``as int/long/String``, ``! - + * / % << < > <= >= == !=
&& || ?: ? :``, ``def name = expression`` lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable


class Unsupported(Exception):
    """A construct this evaluator does not implement (never rendered approximately)."""


# ---------------------------------------------------------------------------------------------------------------- lexing

_TOKEN = re.compile(
    r"""(?P<ws>\s+)|(?P<num>\d+[Ll]?)|(?P<tq>\"\"\")|(?P<dq>")|(?P<sq>')|(?P<id>[A-Za-z_]\w*)|"""
    r"""(?P<op>\?:|\?\.|<<|==|!=|<=|>=|&&|\|\||->|[-+*/%()\[\]{},.?:!<>=])"""
)


def closing_brace(src: str, open_at: int) -> int:
    """Index of the ``}`` that closes the ``{`` at ``open_at`` (nested braces counted, quoted strings skipped), or
    ``len(src)`` when it is never closed: where a ``${...}`` interpolation ends."""
    depth, j = 0, open_at
    while j < len(src):
        if src[j] == "{":
            depth += 1
        elif src[j] == "}":
            depth -= 1
            if depth == 0:
                break
        elif src[j] in "'\"":  # skip a nested string literal
            q = src[j]
            j += 1
            while j < len(src) and src[j] != q:
                j += 2 if src[j] == "\\" else 1
        j += 1
    return j


@dataclass
class Tok:
    kind: str  # num, str (value: list of parts: str or expression source), id, op, end
    value: Any
    pos: int


def _read_string(src: str, pos: int, quote: str) -> tuple[list, int]:
    """Parts of a string literal starting after its opening quote: text pieces and ('expr', source) interpolations."""
    parts: list = []
    buf: list[str] = []
    gstring = quote != "'"
    i = pos
    escapes = {"n": "\n", "t": "\t", "\\": "\\", "$": "$", '"': '"', "'": "'", "r": "\r"}
    while True:
        if i >= len(src):
            raise Unsupported(f"unterminated string at {pos}")
        if src.startswith(quote, i):
            i += len(quote)
            break
        c = src[i]
        if c == "\\":
            nxt = src[i + 1] if i + 1 < len(src) else ""
            if nxt == "\n":  # line continuation inside a string
                i += 2
                continue
            if nxt not in escapes:
                raise Unsupported(f"escape \\{nxt} in a string")
            buf.append(escapes[nxt])
            i += 2
            continue
        if gstring and c == "$":
            if src.startswith("${", i):
                j = closing_brace(src, i + 1)
                if j >= len(src):
                    raise Unsupported("unterminated ${...}")
                parts.append("".join(buf))
                buf = []
                parts.append(("expr", src[i + 2 : j]))
                i = j + 1
                continue
            m = re.match(r"\$([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)", src[i:])
            if m:
                parts.append("".join(buf))
                buf = []
                parts.append(("expr", m.group(1)))
                i += m.end()
                continue
            raise Unsupported(f"bare $ in a GString at {i} (bash variables must be written \\$)")
        buf.append(c)
        i += 1
    parts.append("".join(buf))
    return parts, i


def tokenize(src: str) -> list[Tok]:
    toks: list[Tok] = []
    i = 0
    while i < len(src):
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = len(src) if j < 0 else j
            continue
        m = _TOKEN.match(src, i)
        if not m:
            raise Unsupported(f"unexpected character {src[i]!r} in {src!r}")
        kind = m.lastgroup
        if kind == "ws":
            pass
        elif kind == "num":
            toks.append(Tok("num", int(m.group().rstrip("Ll")), i))
        elif kind in ("tq", "dq", "sq"):
            quote = {"tq": '"""', "dq": '"', "sq": "'"}[kind]
            parts, i = _read_string(src, m.end(), quote)
            toks.append(Tok("str", parts, m.start()))
            continue
        elif kind == "id":
            toks.append(Tok("id", m.group(), i))
        else:
            toks.append(Tok("op", m.group(), i))
        i = m.end()
    toks.append(Tok("end", None, len(src)))
    return toks


# ---------------------------------------------------------------------------------------------------------------- parsing
# AST nodes are tuples: ("lit", v) ("str", parts) ("name", n) ("prop", obj, name, safe) ("index", obj, i)
# ("call", obj|None, name, args) ("list", items) ("map", pairs) ("closure", params, body) ("un", op, x)
# ("bin", op, a, b) ("tern", c, a, b) ("elvis", a, b) ("as", x, type)


class Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.toks = tokenize(src)
        self.i = 0

    def peek(self, k: int = 0) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def accept(self, op: str) -> bool:
        t = self.peek()
        if t.kind == "op" and t.value == op:
            self.i += 1
            return True
        return False

    def expect(self, op: str) -> None:
        if not self.accept(op):
            raise Unsupported(f"expected {op!r} at {self.peek().pos} in {self.src!r}")

    def parse_all(self):
        node = self.expr()
        if self.peek().kind != "end":
            raise Unsupported(f"unparsed rest {self.src[self.peek().pos:]!r}")
        return node

    def expr(self):
        cond = self.binary(0)
        if self.accept("?:"):
            return ("elvis", cond, self.expr())
        if self.accept("?"):
            a = self.expr()
            self.expect(":")
            return ("tern", cond, a, self.expr())
        return cond

    LEVELS = [["||"], ["&&"], ["==", "!="], ["<", ">", "<=", ">=", "in"], ["<<"], ["+", "-"], ["*", "/", "%"]]

    def binary(self, level: int):
        if level == len(self.LEVELS):
            return self.cast()
        left = self.binary(level + 1)
        while True:
            t = self.peek()
            if (t.kind == "op" or (t.kind == "id" and t.value == "in")) and t.value in self.LEVELS[level]:
                self.take()
                left = ("bin", t.value, left, self.binary(level + 1))
            else:
                return left

    def cast(self):
        node = self.unary()
        while self.peek().kind == "id" and self.peek().value == "as":
            self.take()
            node = ("as", node, self.take().value)
        return node

    def unary(self):
        if self.accept("!"):
            return ("un", "!", self.unary())
        if self.accept("-"):
            return ("un", "-", self.unary())
        return self.postfix(self.primary())

    def args(self, close: str) -> list:
        out = []
        if self.accept(close):
            return out
        while True:
            if self.peek().kind == "id" and self.peek(1).kind == "op" and self.peek(1).value == ":":
                raise Unsupported("named arguments in a call")
            out.append(self.expr())
            if self.accept(close):
                return out
            self.expect(",")

    def postfix(self, node):
        while True:
            t = self.peek()
            if t.kind == "op" and t.value in (".", "?."):
                self.take()
                name = self.take()
                if name.kind != "id":
                    raise Unsupported(f"property name expected at {name.pos}")
                if self.accept("("):
                    node = ("call", node, name.value, self.args(")"))
                else:
                    node = ("prop", node, name.value, t.value == "?.")
            elif self.accept("["):
                idx = self.expr()
                self.expect("]")
                node = ("index", node, idx)
            else:
                return node

    def primary(self):
        t = self.take()
        if t.kind == "num":
            return ("lit", t.value)
        if t.kind == "str":
            return ("str", t.value)
        if t.kind == "id":
            if t.value in ("true", "false", "null"):
                return ("lit", {"true": True, "false": False, "null": None}[t.value])
            if self.accept("("):
                return ("call", None, t.value, self.args(")"))
            return ("name", t.value)
        if t.kind == "op" and t.value == "(":
            node = self.expr()
            self.expect(")")
            return node
        if t.kind == "op" and t.value == "[":
            if self.accept(":"):
                self.expect("]")
                return ("map", [])
            if self.peek().kind == "id" and self.peek(1).kind == "op" and self.peek(1).value == ":":
                pairs = []
                while True:
                    key = self.take().value
                    self.expect(":")
                    pairs.append((key, self.expr()))
                    if self.accept("]"):
                        return ("map", pairs)
                    self.expect(",")
                    if self.accept("]"):
                        return ("map", pairs)
            items = []
            while not self.accept("]"):
                items.append(self.expr())
                if not self.accept(","):
                    self.expect("]")
                    break
            return ("list", items)
        if t.kind == "op" and t.value == "{":
            params: list[str] = []
            save = self.i
            names = []
            while self.peek().kind == "id":
                names.append(self.take().value)
                if not self.accept(","):
                    break
            if names and self.accept("->"):
                params = names
            else:
                self.i = save
            body = self.expr()
            self.expect("}")
            return ("closure", params, body)
        raise Unsupported(f"unexpected {t.value!r} at {t.pos} in {self.src!r}")


def parse(src: str):
    return Parser(src).parse_all()


# ---------------------------------------------------------------------------------------------------------------- values


class Staged:
    """A `path` input as a script sees it: one staged name, or a blank-separated list of names."""

    def __init__(self, names: list[str], single: bool) -> None:
        self.names, self.single = names, single

    def __str__(self) -> str:
        return " ".join(self.names)

    @property
    def name(self) -> str:
        if not self.single:
            raise Unsupported(".name of a list of files")
        return self.names[0].rsplit("/", 1)[-1]


@dataclass
class Closure:
    params: list[str]
    body: Any
    scope: dict

    def __call__(self, *args: Any, extra: dict | None = None) -> Any:
        scope = dict(self.scope)
        scope.update(extra or {})
        if self.params:
            if len(args) != len(self.params):
                raise Unsupported(f"closure takes {self.params}, got {len(args)} argument(s)")
            scope.update(zip(self.params, args))
        elif args:
            scope["it"] = args[0]
        return evaluate(self.body, scope)


def truth(v: Any) -> bool:
    """Groovy truth."""
    if isinstance(v, Staged):
        return True
    return bool(v)


def gstr(v: Any) -> str:
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(gstr(x) for x in v) + "]"
    if isinstance(v, dict):
        return "[" + ", ".join(f"{k}:{gstr(x)}" for k, x in v.items()) + "]"
    return str(v)


def _java_format(fmt: str, *args: Any) -> str:
    if not re.fullmatch(r"(?:[^%]|%%|%0?\d*[ds])*", fmt):
        raise Unsupported(f"String.format pattern {fmt!r}")
    return fmt % tuple(args)


def _method(obj: Any, name: str, args: list) -> Any:
    if isinstance(obj, str):
        table: dict[str, Callable[..., Any]] = {
            "trim": lambda: obj.strip(),
            "toLowerCase": lambda: obj.lower(),
            "toUpperCase": lambda: obj.upper(),
            "endsWith": lambda s: obj.endswith(s),
            "startsWith": lambda s: obj.startswith(s),
            "equals": lambda s: obj == s,
            "contains": lambda s: s in obj,
            "tokenize": lambda sep=" \t\n": [p for p in re.split("[" + re.escape(sep) + "]", obj) if p],
            "toString": lambda: obj,
            "size": lambda: len(obj),
            "isEmpty": lambda: not obj,
            "replaceAll": lambda rx, rep: re.sub(rx, rep.replace("$", "\\"), obj),
        }
    elif isinstance(obj, list):
        table = {
            "join": lambda sep="": sep.join(gstr(x) for x in obj),
            "size": lambda: len(obj),
            "contains": lambda x: x in obj,
            "isEmpty": lambda: not obj,
        }
    elif isinstance(obj, bool) or obj is None:
        table = {"toString": lambda: gstr(obj)}
    elif isinstance(obj, int):
        table = {"intdiv": lambda d: int(obj // d) if d else _raise("division by zero"), "toString": lambda: str(obj)}
    elif isinstance(obj, dict):
        table = {"containsKey": lambda k: k in obj, "get": lambda k: obj.get(k), "size": lambda: len(obj)}
    else:
        table = {}
    if name not in table:
        raise Unsupported(f"method {type(obj).__name__}.{name}()")
    return table[name](*args)


def _raise(msg: str):
    raise Unsupported(msg)


_STATIC = {
    ("String", "format"): _java_format,
    ("Math", "max"): max,
    ("Math", "min"): min,
}


def _cast(v: Any, typ: str) -> Any:
    if typ in ("int", "Integer", "long", "Long"):
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            raise Unsupported(f"{gstr(v)!r} as {typ}")
        return int(v)
    if typ == "String":
        return gstr(v)
    raise Unsupported(f"cast to {typ}")


def evaluate(node, scope: dict) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "str":
        out = []
        for part in node[1]:
            out.append(gstr(evaluate(parse(part[1]), scope)) if isinstance(part, tuple) else part)
        return "".join(out)
    if kind == "name":
        if node[1] not in scope:
            raise Unsupported(f"unknown name {node[1]!r}")
        return scope[node[1]]
    if kind == "prop":
        obj = evaluate(node[1], scope)
        if obj is None and node[3]:
            return None
        if isinstance(obj, dict):
            return obj.get(node[2])  # a missing map key is null in Groovy
        if isinstance(obj, Staged) and node[2] == "name":
            return obj.name
        raise Unsupported(f"property .{node[2]} of {type(obj).__name__}")
    if kind == "index":
        obj, idx = evaluate(node[1], scope), evaluate(node[2], scope)
        if isinstance(obj, (list, str)) and isinstance(idx, int):
            try:
                return obj[idx]
            except IndexError:
                return None
        if isinstance(obj, dict):
            return obj.get(idx)
        raise Unsupported(f"index {gstr(idx)} of {type(obj).__name__}")
    if kind == "call":
        target, name, raw = node[1], node[2], node[3]
        args = [evaluate(a, scope) for a in raw]
        if target is None:
            fn = scope.get(name)
            if not callable(fn):
                raise Unsupported(f"function {name}()")
            return fn(*args)
        if target[0] == "name" and (target[1], name) in _STATIC and target[1] not in scope:
            return _STATIC[(target[1], name)](*args)
        return _method(evaluate(target, scope), name, args)
    if kind == "list":
        return [evaluate(x, scope) for x in node[1]]
    if kind == "map":
        return {k: evaluate(v, scope) for k, v in node[1]}
    if kind == "closure":
        return Closure(node[1], node[2], scope)
    if kind == "un":
        v = evaluate(node[2], scope)
        if node[1] == "!":
            return not truth(v)
        if isinstance(v, int) and not isinstance(v, bool):
            return -v
        raise Unsupported(f"-{gstr(v)}")
    if kind == "elvis":
        v = evaluate(node[1], scope)
        return v if truth(v) else evaluate(node[2], scope)
    if kind == "tern":
        return evaluate(node[2], scope) if truth(evaluate(node[1], scope)) else evaluate(node[3], scope)
    if kind == "as":
        return _cast(evaluate(node[1], scope), node[2])
    if kind == "bin":
        op = node[1]
        if op == "&&":
            return truth(evaluate(node[2], scope)) and truth(evaluate(node[3], scope))
        if op == "||":
            return truth(evaluate(node[2], scope)) or truth(evaluate(node[3], scope))
        a, b = evaluate(node[2], scope), evaluate(node[3], scope)
        if op == "==":
            return a == b
        if op == "!=":
            return a != b
        if op == "in":
            return a in b
        if op == "+" and isinstance(a, str):
            return a + gstr(b)
        if op == "+" and isinstance(a, list):
            return a + (b if isinstance(b, list) else [b])
        if not (isinstance(a, int) and isinstance(b, int)) or isinstance(a, bool) or isinstance(b, bool):
            raise Unsupported(f"{gstr(a)!r} {op} {gstr(b)!r}")
        if op == "/":
            raise Unsupported("'/' on integers (Groovy makes a BigDecimal); use intdiv")
        if op == "%" and b == 0:
            raise Unsupported("modulo by zero")
        ops = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__, "%": int.__mod__, "<<": int.__lshift__,
               "<": int.__lt__, ">": int.__gt__, "<=": int.__le__, ">=": int.__ge__}
        return ops[op](a, b)
    raise Unsupported(f"node {kind}")


# ---------------------------------------------------------------------------------------------------------------- scripts


def run_defs_and_string(block: str, scope: dict) -> str:
    """A `script:`/`stub:` section: `def x = expr` lines (and comments), then ONE triple-quoted string, rendered."""
    scope = dict(scope)
    m = re.search(r'"""', block)
    if not m:
        raise Unsupported("a script block without a triple-quoted command")
    head, tail = block[: m.start()], block[m.start():]
    for raw in head.splitlines():
        line = raw.strip()
        if not line or line.startswith("//"):
            continue
        d = re.fullmatch(r"def\s+([A-Za-z_]\w*)\s*=\s*(.+)", line)
        if not d:
            raise Unsupported(f"statement {line!r} in a script block")
        scope[d.group(1)] = evaluate(parse(d.group(2)), scope)
    toks = Parser(tail)
    node = toks.primary()
    if node[0] != "str" or toks.peek().kind != "end":
        raise Unsupported("anything after the script's command string")
    return evaluate(node, scope)
