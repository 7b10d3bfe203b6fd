"""The one FASTA reader and writer of the project.

Reading follows what Biopython's ``SeqIO.parse(..., "fasta")`` gives the original VirNucPro: the record id is the
header text up to the first white space, the description is dropped, sequence lines are joined with white space
removed, and letter case is kept (callers upper-case where the original does). Unlike Biopython it refuses input that
is not FASTA at all (binary junk, text before the first header, a header without an id) with one line naming the
file and record, so a wrong file never turns into an empty, "successful" run.

Plain and gzip-compressed files are detected by content, not by name.
"""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator, TextIO

from virnucpro.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"

#: Letters a DNA record may hold: IUPAC nucleotide codes plus X (masked base), either case. Anything else marks the
#: record ``invalid_characters`` (it is listed, not scored). Ambiguous letters are kept and handled as the original
#: does (codons holding them are dropped in translation; DNABERT-S sees them as [UNK]).
DNA_LETTERS = frozenset("ACGTURYSWKMBDHVNXacgturyswkmbdhvnx")


@dataclass(frozen=True)
class FastaRecord:
    """One record: ``id`` as the original sees it, the raw ``sequence`` (case kept), its 1-based ``number``."""

    id: str
    sequence: str
    number: int
    line: int


def open_text(path: str | os.PathLike[str]) -> TextIO:
    """Open a plain or gzip file as text, choosing by the first bytes, so ``reads.fa.gz`` named ``.fa`` still works."""
    path = Path(path)
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a FASTA file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    magic = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    stream: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if magic == GZIP_MAGIC else raw  # type: ignore[assignment]
    return io.TextIOWrapper(stream, encoding="utf-8", errors="strict", newline=None)


def read_fasta(path: str | os.PathLike[str]) -> Iterator[FastaRecord]:
    """Stream the records of ``path``; memory stays at one record whatever the file size.

    Raises :class:`InputError` (naming the file, record and line) for binary or non-FASTA content and for a header
    without an id. An empty file yields nothing: callers decide whether that is an error.
    """
    path = Path(path)
    handle = open_text(path)
    current_id: str | None = None
    parts: list[str] = []
    number = 0
    header_line = 0
    lineno = 0
    try:
        with handle:
            for lineno, line in enumerate(handle, start=1):
                if "\x00" in line:
                    raise InputError(f"{path}: line {lineno}: binary data, not a FASTA file")
                if line.startswith(">"):
                    if current_id is not None:
                        yield FastaRecord(current_id, "".join(parts), number, header_line)
                    number += 1
                    header_line = lineno
                    fields = line[1:].split(None, 1)
                    if not fields:
                        raise InputError(f"{path}: record {number} (line {lineno}): header has no sequence id")
                    current_id = fields[0]
                    parts = []
                elif current_id is None:
                    if line.strip():
                        raise InputError(
                            f"{path}: line {lineno}: not a FASTA file (expected a '>' header, found {line.strip()[:30]!r})"
                        )
                else:
                    parts.append("".join(line.split()))
    except UnicodeDecodeError:
        where = f"record {number} ({current_id})" if current_id else f"line {lineno + 1}"
        raise InputError(f"{path}: {where}: not valid text (binary data?), not a FASTA file") from None
    except (OSError, EOFError) as exc:  # truncated or corrupt gzip stream
        raise InputError(f"{path}: cannot read past record {number}: {exc}") from None
    if current_id is not None:
        yield FastaRecord(current_id, "".join(parts), number, header_line)


def invalid_letters(sequence: str) -> str:
    """The distinct letters of ``sequence`` outside :data:`DNA_LETTERS`, in first-seen order ('' when clean)."""
    bad = set(sequence).difference(DNA_LETTERS)
    if not bad:
        return ""
    return "".join(dict.fromkeys(ch for ch in sequence if ch in bad))


def write_record(out: TextIO, record_id: str, sequence: str, width: int = 0) -> None:
    """Write one record; ``width`` > 0 wraps lines (Biopython wraps at 60), 0 writes one sequence line."""
    out.write(f">{record_id}\n")
    if width <= 0 or len(sequence) <= width:
        out.write(f"{sequence}\n")
        return
    for start in range(0, len(sequence), width):
        out.write(sequence[start : start + width])
        out.write("\n")
