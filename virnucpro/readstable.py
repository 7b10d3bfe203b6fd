"""``reads.tsv``, the prepare stage's one row per input read: its columns, the statuses, writing and reading rows.

Every input read gets a row, with a status when it yields no frame, so nothing is dropped silently; summarize and the
report read the table back (docs/output.md explains each column and status).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from virnucpro.errors import InputError

READS_HEADER = ("read_id", "file", "record", "length", "windows", "frames", "tokens", "shard", "status")

#: Per-read statuses written to reads.tsv (docs/output.md explains each).
STATUS_OK = "ok"
STATUS_NO_FRAME = "no_stop_free_frame"
STATUS_NO_CODON = "no_translatable_codon"
STATUS_TOO_SHORT = "too_short"
STATUS_EMPTY = "empty"
STATUS_INVALID = "invalid_characters"
STATUS_DUPLICATE = "duplicate_id"
#: Status codes used inside a block (index into this tuple); also the order of ``statuses`` in the manifest.
STATUSES = (STATUS_OK, STATUS_NO_FRAME, STATUS_NO_CODON, STATUS_TOO_SHORT, STATUS_EMPTY, STATUS_INVALID, STATUS_DUPLICATE)
#: Status name → its code in :data:`STATUSES`.
STATUS_CODE = {name: i for i, name in enumerate(STATUSES)}


def gather(items: Sequence, index: np.ndarray) -> list:
    """``[items[i] for i in index]`` as one numpy gather (an object array) instead of a Python loop."""
    table = np.empty(len(items), dtype=object)
    table[:] = items
    return table[index].tolist()


def rows_text(ids: list[str], label: str, first_record: int, *columns: np.ndarray) -> bytes:
    """reads.tsv rows (UTF-8): id, file, record number, then ``columns`` (length, windows, frames, tokens, shard,
    status code).

    The numeric tail of a row repeats a lot within a block (reads of one length give few distinct window/frame/token
    counts), so each distinct tail is formatted once and gathered back; the row pieces are then interleaved and joined
    once: this is the per-read cost of the stage, worth keeping out of Python loops. The distinct tails come from one
    1-D sort of a mixed-radix number per row (the columns are counts: non-negative integers); a sort per column, or
    ``np.unique`` over whole rows (a sort of records), costs several times more.
    """
    n = len(ids)
    if not n:
        return b""
    key = np.zeros(n, dtype=np.int64)  # a number per row, equal for equal tails
    span = 1  # key < span
    for column in columns:
        radix = int(column.max()) + 1
        if span * radix >= 1 << 62:  # would overflow: renumber the tails seen so far 0..distinct-1
            values, inverse = np.unique(key, return_inverse=True)
            key, span = inverse.reshape(-1).astype(np.int64), len(values)
        key = key * radix + column
        span *= radix
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    distinct = np.stack(columns, axis=1)[first].tolist()
    tails = ["\t" + "\t".join(map(str, row[:-1])) + f"\t{STATUSES[row[-1]]}\n" for row in distinct]
    parts: list[str] = [f"\t{label}\t"] * (4 * n)
    parts[0::4] = ids
    parts[2::4] = map(str, range(first_record, first_record + n))
    parts[3::4] = gather(tails, inverse.reshape(-1))
    return "".join(parts).encode("utf-8")


def read_reads_table(path: Path) -> Iterable[dict[str, str]]:
    """Stream the rows of a prepare ``reads.tsv`` as dicts (used by summarize)."""
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if tuple(header) != READS_HEADER:
            raise InputError(f"{path}: not a prepare reads.tsv (header {header[:4]}...)")
        for lineno, line in enumerate(fh, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != len(READS_HEADER):
                raise InputError(f"{path}: line {lineno}: expected {len(READS_HEADER)} columns, got {len(fields)}")
            yield dict(zip(READS_HEADER, fields))
