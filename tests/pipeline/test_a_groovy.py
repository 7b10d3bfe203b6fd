"""The renderer is honest: the subset renders as Groovy would, anything else raises instead of guessing."""

from __future__ import annotations

import pytest

from groovy import Unsupported, evaluate, parse, run_defs_and_string


@pytest.mark.parametrize("src,scope,expected", [
    ("\"${meta.id}_${String.format('%04d', meta.shard as int)}\"", {"meta": {"id": "a", "shard": "7"}}, "a_0007"),
    ("task.ext.args ?: ''", {"task": {"ext": {}}}, ""),
    ("[a ? '--x' : '', \"--n ${Math.max(64L, (b as long).intdiv(1L << (t - 1)))}\"].join(' ').trim()", {"a": False, "b": 1000, "t": 2}, "--n 500"),
    ("p.tokenize(':')[-1].tokenize('_')[0].toLowerCase()", {"p": "NF:VIRNUCPRO:EMBED_DNA"}, "embed"),
    ("meta.missing", {"meta": {}}, None),
])
def test_subset_evaluates_like_groovy(src, scope, expected) -> None:
    assert evaluate(parse(src), scope) == expected


@pytest.mark.parametrize("src", ["(130..145)", "x.frobnicate()", "{ a -> def b = 1; b }", "unknown_name", "7 / 2", "x as Path"])
def test_unknown_constructs_raise(src) -> None:
    with pytest.raises(Unsupported):
        evaluate(parse(src), {"x": "s"})


def test_script_block_renders_escapes_and_refuses_bare_dollar() -> None:
    block = "def p = meta.id\n\"\"\"\nexport A=\\$PWD\nawk -F'\\\\t' x \\\\\n  ${p}\n\"\"\""
    assert run_defs_and_string(block, {"meta": {"id": "s"}}) == "\nexport A=$PWD\nawk -F'\\t' x \\\n  s\n"
    with pytest.raises(Unsupported):
        run_defs_and_string('"""\necho $HOME/x\n"""', {})
    with pytest.raises(Unsupported):
        run_defs_and_string('if (x) { y }\n"""\necho\n"""', {})
