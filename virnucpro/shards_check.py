"""Shard identity: every per-shard file says which shard of which prepare run it holds, and each stage checks it.

WHY: the Nextflow pipeline moves shard files between tasks through channels; a wiring mistake (a DNA file joined with
another shard's protein file, a features file swapped for an embedding, a shard lost or given twice to summarize)
would otherwise produce plausible but wrong tables. With the identity IN the files, a run is either right or fails
with one line naming the shard, whatever the channels did. ``virnucpro run`` goes through the same stage functions,
so it gets the same checks.

The identity is born in prepare's file names (``<prefix>_NNNN.nuc.fa`` / ``.prot.fa``, listed in its
``manifest.json``) and from then on travels inside the files:

- embed-dna / embed-protein HDF5 attributes: ``kind`` (``dna`` / ``protein``), ``shard`` (``<prefix>_NNNN``),
  ``rows``, ``source`` (input FASTA name) and ``source_sha256`` (its SHA-256, the manifest's ``nuc_sha256`` /
  ``prot_sha256``);
- merge HDF5: ``kind`` = ``features``, ``shard``, ``rows``, ``nuc_sha256``, ``prot_sha256``;
- predict TSV: a first line ``#virnucpro kind=frames shard=… rows=… nuc_sha256=… prot_sha256=…`` (only when the
  features carry a shard, so a table scored from other features keeps the original format exactly);
- summarize ``--manifest``: every shard of the manifest with frames must come exactly once, with the checksums the
  manifest recorded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from virnucpro.checksum import file_sha256
from virnucpro.errors import InputError

#: ``kind`` attribute values (HDF5) and the frame table's kind.
KIND_DNA, KIND_PROTEIN, KIND_FEATURES, KIND_FRAMES = "dna", "protein", "features", "frames"
#: First line of a frame table that carries its shard's identity (skipped by the table reader).
FRAMES_TAG = "#virnucpro"

_SHARD_FASTA = re.compile(r"^(?P<shard>.+_[0-9]{4,})\.(?P<side>nuc|prot)\.fa$")


def shard_of_fasta(path: str | Path) -> str | None:
    """``s1_0003`` for prepare's ``s1_0003.nuc.fa`` / ``s1_0003.prot.fa``; None for any other file name."""
    m = _SHARD_FASTA.match(Path(path).name)
    return m.group("shard") if m else None


def source_attrs(input_fa: str | Path) -> dict[str, str]:
    """What an embedding file records about its input: ``source`` name, ``source_sha256`` and, for a prepared shard,
    ``shard`` (a stream has no checksum; a FASTA not named like a shard has no shard)."""
    path = Path(input_fa)
    attrs = {"source": path.name}
    if path.is_file():
        attrs["source_sha256"] = file_sha256(path)
    shard = shard_of_fasta(path)
    if shard:
        attrs["shard"] = shard
    return attrs


def _describe(path: Path, attrs: Mapping[str, Any]) -> str:
    shard = attrs.get("shard")
    return f"{path} (shard {shard})" if shard else str(path)


def check_kind(path: Path, attrs: Mapping[str, Any], expected: str) -> None:
    """Refuse a file whose ``kind`` attribute says it holds something else (files without the attribute pass)."""
    kind = attrs.get("kind")
    if kind is not None and kind != expected:
        raise InputError(f"{_describe(path, attrs)}: holds {kind!r} rows, expected {expected!r} (wrong file handed to this step)")


def check_pair(dna: Path, dna_attrs: Mapping[str, Any], protein: Path, protein_attrs: Mapping[str, Any]) -> str | None:
    """Before merging: both files are of their kind, of the same shard, with the same row count. Returns the shard."""
    check_kind(dna, dna_attrs, KIND_DNA)
    check_kind(protein, protein_attrs, KIND_PROTEIN)
    d_shard, p_shard = dna_attrs.get("shard"), protein_attrs.get("shard")
    if d_shard != p_shard:
        raise InputError(
            f"cannot merge: {dna} is shard {d_shard} but {protein} is shard {p_shard}"
            " (a DNA shard paired with another shard's protein)"
        )
    d_rows, p_rows = dna_attrs.get("rows"), protein_attrs.get("rows")
    if d_rows is not None and p_rows is not None and d_rows != p_rows:
        raise InputError(f"cannot merge shard {d_shard}: {dna} has {d_rows} rows but {protein} has {p_rows} rows")
    return d_shard


def frames_tag(attrs: Mapping[str, Any], rows: int) -> str | None:
    """The identity line predict writes above a frame table (None when the features carry no shard)."""
    if not attrs.get("shard"):
        return None
    fields = {"kind": KIND_FRAMES, "shard": attrs["shard"], "rows": rows,
              "nuc_sha256": attrs.get("nuc_sha256", ""), "prot_sha256": attrs.get("prot_sha256", "")}
    return FRAMES_TAG + "".join(f" {k}={v}" for k, v in fields.items())


def read_frames_tag(path: Path) -> dict[str, str] | None:
    """The identity fields of a frame table's first line, or None when it has none."""
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
    except OSError as exc:
        raise InputError(f"{path}: cannot open frame table ({exc.strerror})") from None
    if not first.startswith(FRAMES_TAG + " "):
        return None
    try:
        return dict(field.split("=", 1) for field in first[len(FRAMES_TAG):].split())
    except ValueError:
        raise InputError(f"{path}: line 1: malformed {FRAMES_TAG} identity line") from None


def _data_rows(path: Path) -> int:
    with open(path, encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip() and not line.startswith("#")) - 1  # minus the header


def tables_by_shard(manifest_json: Path | Mapping[str, Any], tables: Sequence[Path]) -> list[Path | None]:
    """Frame tables in the manifest's shard order (None for a shard without frames that was not scored).

    Refused, naming the shard: a table without an identity line, of a shard not in the manifest, made from shard
    files other than those the manifest recorded (checksums), truncated (fewer rows than it announces), given twice,
    or missing while its shard has frames. Shards without frames may be left out (the pipeline embeds none of them).
    """
    if isinstance(manifest_json, Mapping):
        manifest, where = manifest_json, "the prepare manifest"
    else:
        where = str(manifest_json)
        try:
            manifest = json.loads(Path(manifest_json).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{manifest_json}: unreadable prepare manifest ({exc})") from None
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        raise InputError(f"{where}: no 'shards' list (not a manifest.json written by prepare)")
    index = {shard_of_fasta(s["nuc"]): i for i, s in enumerate(shards)}
    placed: list[Path | None] = [None] * len(shards)
    for table in tables:
        table = Path(table)
        tag = read_frames_tag(table)
        if tag is None or tag.get("kind") != KIND_FRAMES:
            raise InputError(f"{table}: no '{FRAMES_TAG} kind=frames shard=…' line: not a frame table predicted from a prepared shard")
        shard = tag.get("shard")
        if shard not in index:
            raise InputError(f"{table}: shard {shard} is not in {where} (tables from a different prepare run?)")
        i = index[shard]
        if placed[i] is not None:
            raise InputError(f"shard {shard} given twice: {placed[i]} and {table}")
        entry = shards[i]
        for side in ("nuc_sha256", "prot_sha256"):
            if entry.get(side) and tag.get(side) and entry[side] != tag[side]:
                raise InputError(f"{table}: shard {shard} was embedded from other files than {where} records ({side} differs)")
        if "rows" in tag and str(_data_rows(table)) != tag["rows"]:
            raise InputError(f"{table}: shard {shard} announces {tag['rows']} rows but holds {_data_rows(table)} (truncated?)")
        placed[i] = table
    missing = [shard_of_fasta(s["nuc"]) or s["nuc"] for s, t in zip(shards, placed) if t is None and int(s.get("frames", 0)) > 0]
    if missing:
        raise InputError(f"missing frame table for shard(s) {', '.join(missing)} of {where} (got {len(tables)} table(s))")
    return placed
