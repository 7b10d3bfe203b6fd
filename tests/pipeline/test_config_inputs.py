"""Issue 18, defect 8: a samplesheet with no rows, or sample names that would share an output folder, stop the run
with one clear line before any task runs.

The row schema (assets/schema_input.json) is checked with jsonschema; the Groovy checks in
subworkflows/local/utils_nfcore_virnucpro_pipeline/main.nf are read and their regular expressions applied here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
UTILS = ROOT / "subworkflows/local/utils_nfcore_virnucpro_pipeline/main.nf"


def _schema() -> dict:
    return json.loads((ROOT / "assets/schema_input.json").read_text())


def _function(name: str) -> str:
    text = UTILS.read_text()
    start = text.index(f"def {name}(")
    return text[start: text.index("\n}\n", start)]


def test_a_header_only_samplesheet_is_refused_by_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(_schema())
    assert not validator.is_valid([]), "a samplesheet with only a header must not validate"
    assert validator.is_valid([{"sample": "gut_01", "fasta": "a.fa"}])
    assert not validator.is_valid([{"sample": "gut 01", "fasta": "a.fa"}])
    assert _schema()["uniqueEntries"] == ["sample", "fasta"], "the same row twice is refused by nf-schema"


def test_the_rows_are_checked_before_the_channel_is_built() -> None:
    text = UTILS.read_text()
    assert re.search(r"\.fromList\(checkSamples\(samplesheetToList\(input,[^\n]*\), input\)\)", text)
    body = _function("checkSamples")
    assert re.search(r"if \(!rows\) \{\s*error\(", body), "no rows: error"
    assert "groupBy { id -> sampleFolderKey(id) }" in body and "error(" in body.split("groupBy", 1)[1]
    assert re.search(r"return id\.toString\(\)\.toLowerCase\(\)", _function("sampleFolderKey"))


@pytest.mark.parametrize("names,collide", [
    (["gut_01", "gut_01"], False),          # one sample, pooled rows
    (["gut_01", "gut_02"], False),
    (["Gut_01", "gut_01"], True),           # one folder on a case-insensitive file system
    (["A.b", "a.B", "c"], True),
])
def test_sample_names_that_share_an_output_folder_collide(names: list[str], collide: bool) -> None:
    # the key function of the Groovy code, applied as written (toString().toLowerCase())
    assert re.search(r"toLowerCase\(\)", _function("sampleFolderKey"))
    keys: dict[str, set[str]] = {}
    for name in names:
        keys.setdefault(name.lower(), set()).add(name)
    assert any(len(v) > 1 for v in keys.values()) == collide


@pytest.mark.parametrize("file_name,sample", [
    ("reads.fa", "reads"), ("my reads.fa.gz", "my_reads"), ("x(1).FASTA", "x_1_"), ("a:b;c.fna", "a_b_c"),
])
def test_a_fasta_file_name_becomes_a_valid_sample_name(file_name: str, sample: str) -> None:
    body = _function("fastaSampleId")
    ext, bad = re.findall(r"replaceAll\(/(.*?)/, '(.*?)'\)", body)
    strip = re.sub(r"^\(\?i\)", "", ext[0])
    got = re.sub(strip, ext[1], file_name, flags=re.I)
    got = re.sub(bad[0], bad[1], got)
    assert got == sample
    assert re.fullmatch(_schema()["items"]["properties"]["sample"]["pattern"], got), "not a valid samplesheet name"
