"""Issue 18, defect 2: every param is typed, so a value given on the command line behaves on 25.10 and 26.x.

Under the strict syntax (default from Nextflow 26.04) ``--save_embeddings false`` reaches the pipeline as the
*string* "false" -- truthy in Groovy -- unless the param is declared with its type in a ``params { }`` block, which
converts command-line values. These checks read main.nf's block, nextflow_schema.json and the config files, and
then take every param as a command-line string and follow it to each place that reads it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import pipeline_lint as lint  # noqa: E402

GROOVY = {"string": "String", "integer": "Integer", "boolean": "Boolean", "number": "Float"}


def schema_params() -> dict[str, dict]:
    return lint.schema_params(json.loads((ROOT / "nextflow_schema.json").read_text()))


def typed_block() -> dict[str, tuple[str, str]]:
    """main.nf's ``params { name: Type = default }`` -> {name: (Type, default text)}."""
    text = (ROOT / "main.nf").read_text()
    m = re.search(r"(?ms)^params\s*\{\n(.*?)^\}", text)
    assert m, "main.nf has no typed params block"
    out = {}
    for line in m.group(1).splitlines():
        line = re.sub(r"^\s*//.*$", "", line).strip()
        if not line:
            continue
        d = re.fullmatch(r"(\w+)\s*:\s*(\w+)(?:\s*=\s*(.+))?", line)
        assert d, f"not a typed param declaration: {line!r}"
        out[d.group(1)] = (d.group(2), (d.group(3) or "").strip())
    return out


def _schema_type(spec: dict) -> str:
    t = spec["type"]
    return "string" if isinstance(t, list) else t  # help: boolean or a param name -> String ("true" when bare)


def _literal(text: str) -> object:
    if text == "null":
        return None
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d*", text):
        return float(text)
    m = re.fullmatch(r"'([^']*)'|\"([^\"$]*)\"", text)
    assert m, f"default is not a literal: {text}"
    return m.group(1) if m.group(1) is not None else m.group(2)


def test_every_schema_param_is_declared_with_the_schema_type_and_default() -> None:
    schema, block = schema_params(), typed_block()
    assert sorted(block) == sorted(schema), "main.nf params block and nextflow_schema.json list different params"
    for name, spec in schema.items():
        declared, default = block[name]
        assert declared == GROOVY[_schema_type(spec)], f"{name}: declared {declared}, schema says {spec['type']}"
        want = spec.get("default", False if declared == "Boolean" else None)
        assert _literal(default) == want, f"{name}: main.nf default {default} != schema default {want!r}"


def test_config_defaults_have_the_declared_type() -> None:
    block = typed_block()
    defaults = lint.config_param_defaults(ROOT / "nextflow.config", blocks_only=True)
    for profile in sorted((ROOT / "conf").glob("test*.config")):
        defaults.update({f"{profile.name}:{k}": v for k, v in lint.config_param_defaults(profile, blocks_only=True).items()})
    kinds = {"Boolean": bool, "Integer": int, "Float": (int, float), "String": str}
    for key, value in defaults.items():
        name = key.split(":")[-1]
        assert name in block, f"{key} is set in a config but not declared in main.nf"
        if value is None or not isinstance(value, (bool, int, float, str)):
            continue  # null, or an expression (e.g. "${projectDir}/...", a date) read as its text
        want = kinds[block[name][0]]
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        assert ok, f"{key} = {value!r} in a config, but main.nf declares {block[name][0]}"


def _reads(name: str) -> list[tuple[str, str]]:
    """(file, rest of line) for every config read of params.<name> outside the params { } defaults."""
    hits = []
    for path in [ROOT / "nextflow.config", *sorted((ROOT / "conf").glob("*.config"))]:
        code = lint._code_without_comments(path.read_text())
        code = re.sub(r"(?ms)^params\s*\{.*?^\}", "", code)
        for m in re.finditer(rf"params\.{name}\b(.*)", code):
            hits.append((path.name, m.group(1)))
    return hits


def test_every_param_given_as_a_command_line_string_behaves_in_the_configs() -> None:
    """The config files are read before main.nf's params block converts anything: each read there must give the
    same answer for the string a command line hands over as for the typed value."""
    for name, spec in schema_params().items():
        kind = _schema_type(spec)
        for where, rest in _reads(name):
            if kind == "boolean":
                # "false" is truthy: only an explicit comparison of the text gives false for it
                assert rest.startswith(".toString() == 'true'"), f"{where}: params.{name}{rest.strip()[:40]} treats the string 'false' as true"
            elif kind in ("integer", "number"):
                # "8" * 2 is "88" and "8" < "16" is false in Groovy: numbers are cast before arithmetic or comparison
                arithmetic = re.match(r"\s*[-+*/<>]|\s*[=!]=", rest)
                assert not arithmetic or rest.lstrip().startswith(("as int", "as long", "as Integer")), \
                    f"{where}: params.{name}{rest.strip()[:40]} uses a command-line string as a number"


def test_resource_caps_are_cast_when_read() -> None:
    base = lint._code_without_comments((ROOT / "conf/base.config").read_text())
    assert re.search(r"cpus\s*:\s*params\.limit_cpus as int", base)
