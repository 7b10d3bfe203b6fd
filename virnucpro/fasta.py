"""The one FASTA reader and writer of the project.

Reading follows what Biopython's ``SeqIO.parse(..., "fasta")`` gives the original VirNucPro: the record id is the
header text up to the first white space, the description is dropped, sequence lines are joined with (ASCII) white
space removed, and letter case is kept (callers upper-case where the original does). Unlike Biopython it refuses input
that is not FASTA at all (binary junk, text before the first header, a header without an id, bytes that are not UTF-8)
with one line naming the file, the record and the line, so a wrong file never turns into an empty, "successful" run.

The reader works on blocks of whole records (about :data:`BLOCK_BYTES` each) rather than line by line, because the
prepare stage processes reads a block at a time (and in parallel): :func:`read_blocks` cuts the byte stream at record
boundaries in the reading process, :func:`parse_block` turns one block into ids and sequences wherever it runs, and
:func:`read_fasta` chains the two for callers that want one record at a time. Memory stays at one block (or one
record, when a record is larger than a block) whatever the file size.

Inputs are opened by :class:`virnucpro.instream.InputStream` (compression detected by content, pipes, a UTF-8 byte
order mark, the checksum of the bytes as stored); this module sees decompressed bytes only.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterator, TextIO

import numpy as np

from virnucpro.errors import InputError
from virnucpro.instream import CODEC_ERRORS, READ_BYTES, InputStream

#: Target size of one block of records handed to :func:`parse_block` (a block holds whole records only).
BLOCK_BYTES = 1 << 20
_WHITESPACE = b" \t\n\r\x0b\x0c"
NL, NL_GT = b"\n", b"\n>"

#: Letters a DNA record may hold: IUPAC nucleotide codes plus X (masked base), either case. Anything else marks the
#: record ``invalid_characters`` (it is listed, not scored). Ambiguous letters are kept and handled as the original
#: does (codons holding them are dropped in translation; DNABERT-S sees them as [UNK]). U (RNA) is accepted here; the
#: prepare stage reads it as T and says so.
DNA_LETTERS = frozenset("ACGTURYSWKMBDHVNXacgturyswkmbdhvnx")


@dataclass(frozen=True)
class FastaRecord:
    """One record: ``id`` as the original sees it, the raw ``sequence`` (case kept), its 1-based ``number`` in the
    file and the ``line`` of its header."""

    id: str
    sequence: str
    number: int
    line: int


@dataclass(frozen=True)
class RawBlock:
    """Whole records as bytes (starting at a ``>`` header), with where they sit in the file, for error messages.

    ``newlines``/``headers`` are :func:`_count_lines` of ``data`` when the reader already counted them (-1: not yet),
    so the worker parsing the block does not scan it again."""

    source: str
    data: bytes
    first_record: int
    first_line: int
    newlines: int = -1
    headers: int = -1


@dataclass
class ParsedBlock:
    """The records of one block: ids, sequences (bytes, white space removed, case kept) and header line numbers;
    ``joined`` is ``b"".join(sequences)`` when parsing made it anyway (``None`` otherwise), so callers that need the
    block's letters end to end do not copy them again."""

    ids: list[str]
    sequences: list[bytes]
    lines: list[int]
    first_record: int
    joined: bytes | None = None


def read_blocks(stream: InputStream, block_bytes: int = BLOCK_BYTES) -> Iterator[RawBlock]:
    """Cut ``stream`` into blocks of whole records (each begins with ``>``), about ``block_bytes`` each.

    Line endings are normalised (CRLF and lone CR become LF) so line numbers and sequences do not depend on them.
    Text before the first header, NUL bytes and a corrupt or truncated gzip stream raise :class:`InputError`.
    Work is linear in the input size: each byte is scanned once, even inside a record larger than a block.
    """
    name = stream.name
    parts: list[bytes] = []  # the block being collected: starts at a header, holds whole lines
    size = 0
    record, line = 1, 1  # number of the block's first record and its header line
    started = False  # a header was seen (everything before it must be blank)
    line_start = True  # the next byte begins a line
    carry = b""  # a CR at a read boundary waits to see whether LF follows
    read_size = max(1, min(block_bytes, 4 * READ_BYTES))
    while True:
        try:
            chunk = stream.read(read_size)
        except CODEC_ERRORS as exc:  # corrupt or truncated compressed stream
            complete = record - 1 + max(0, sum(p.count(NL_GT) for p in parts) + bool(parts) - 1)
            raise InputError(f"{name}: cannot read past record {complete}: {exc}") from None
        eof = not chunk
        chunk, carry = carry + chunk, b""
        if b"\r" in chunk:
            if chunk.endswith(b"\r") and not eof:
                chunk, carry = chunk[:-1], b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\x00" in chunk:
            before = sum(p.count(NL) for p in parts) + chunk.count(NL, 0, chunk.index(b"\x00"))
            raise InputError(f"{name}: line {line + before}: binary data, not a FASTA file")
        if not started and chunk:
            if line_start and chunk.startswith(b">"):
                start = 0
            else:
                found = chunk.find(NL_GT)
                start = found + 1 if found >= 0 else len(chunk)
            preamble = chunk[:start]
            _check_preamble(name, preamble, line)
            line += preamble.count(NL)
            line_start = chunk.endswith(NL)
            chunk = chunk[start:]
            started = bool(chunk)
        if eof:
            if parts or chunk:
                yield RawBlock(name, b"".join([*parts, chunk]), record, line)
            return
        if not chunk:
            continue
        cut = -1
        if size + len(chunk) >= block_bytes:
            found = chunk.rfind(NL_GT)
            if found >= 0:
                cut = found + 1
            elif chunk.startswith(b">") and parts and parts[-1].endswith(NL):
                cut = 0
        if cut < 0 or (cut == 0 and not parts):
            parts.append(chunk)
            size += len(chunk)
            continue
        block = b"".join([*parts, memoryview(chunk)[:cut]])  # one copy (a + of bytes would copy the block twice)
        rest = chunk[cut:]
        parts, size = ([rest], len(rest)) if rest else ([], 0)
        newlines, headers = _count_lines(block)
        yield RawBlock(name, block, record, line, newlines, headers)
        record += headers + 1
        line += newlines


def _count_lines(data: bytes) -> tuple[int, int]:
    """Newlines in ``data`` and the newlines among them followed by ``>`` (the records after the first).

    It runs in the reading process for every block, where with several workers every cycle delays all of them: one
    vectorised compare counts the newlines, and only the few ``>`` positions are checked for a newline before them
    (3x faster than comparing the whole block twice, or than two ``bytes.count`` scans)."""
    text = np.frombuffer(data, dtype=np.uint8)
    after = np.flatnonzero(text[1:] == ord(">"))  # index of the byte before each ">" (the first byte excluded)
    return int(np.count_nonzero(text == NL[0])), int(np.count_nonzero(text[after] == NL[0]))


def _check_preamble(name: str, text: bytes, first_line: int) -> None:
    """Only blank lines may precede the first header."""
    if not text.strip():
        return
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = first_line + text.count(NL, 0, exc.start)
        raise InputError(f"{name}: line {lineno}: not valid text (binary data?), not a FASTA file") from None
    lines = decoded.split("\n")
    lineno, first = next((i, s.strip()) for i, s in enumerate(lines, start=first_line) if s.strip())
    raise InputError(f"{name}: line {lineno}: not a FASTA file (expected a '>' header, found {first[:30]!r})")


def parse_block(block: RawBlock, with_lines: bool = False) -> ParsedBlock:
    """Ids, sequences (and, if asked, header line numbers) of the records in ``block`` (see :func:`read_blocks`).

    Written as whole-list operations (C loops) with the per-record checks done on the block at once, because this runs
    on every read; the slow, precise path that names the offending record and line runs only when a check fails.
    """
    data = block.data
    if not data:
        return ParsedBlock([], [], [], block.first_record)
    newlines, headers = (block.newlines, block.headers) if block.headers >= 0 else _count_lines(data)
    n_records = headers + 1
    two_line, wrapped = False, None
    if newlines + (not data.endswith(NL)) == 2 * n_records:  # as many lines as one sequence line per record
        lines = data.split(NL)
        if lines[-1] == b"":
            lines.pop()
        heads, bodies = lines[0::2], lines[1::2]
        # the usual layout, one sequence line per record: every even line a header, no header on an odd line
        two_line = len(heads) == len(bodies) == n_records and data.startswith(b">") and b"\n".join(heads).count(NL_GT) == n_records - 1
    records: list[tuple[bytes, bytes, bytes]] | None = None
    joined: bytes | None = None
    if two_line:
        sequences = bodies
        joined = b"".join(bodies)
        if len(joined.translate(None, _WHITESPACE)) != len(joined):
            sequences = [b.translate(None, _WHITESPACE) for b in bodies]
            joined = None
    else:  # sequences wrapped over several lines (or none)
        wrapped = _wrapped_records(data)
        if wrapped is not None:
            sequences, header_lines, joined = wrapped
        else:  # white space other than line breaks inside a sequence: record by record
            records = [part.partition(NL) for part in data[1:].split(NL_GT)]
            sequences = [r[2].translate(None, _WHITESPACE) for r in records]
    ids = _header_ids(data, n_records)
    if ids is None:  # a header that is not plain ASCII, or without an id: line by line, naming a bad one
        records = records or [part.partition(NL) for part in data[1:].split(NL_GT)]
        try:  # the header line without its ">" (split at "\n>", the block's first byte dropped)
            ids = [header.decode("utf-8").split(None, 1)[0] for header, _, _ in records]
        except (UnicodeDecodeError, IndexError):
            _locate_header_error(block, records)
            raise  # pragma: no cover - _locate_header_error always raises
    if records is None and not data.isascii():
        records = [part.partition(NL) for part in data[1:].split(NL_GT)]
    if not data.isascii():
        for i, (record, sequence) in enumerate(zip(records, sequences)):
            if not sequence.isascii():
                _check_utf8(block.source, block.first_record + i, ids[i], _header_line(block, records, i), record[2])
    lines: list[int] = []
    if with_lines and two_line:
        lines = list(range(block.first_line, block.first_line + 2 * len(ids), 2))
    elif with_lines and wrapped is not None:
        lines = (header_lines + block.first_line).tolist()
    elif with_lines:  # one pass instead of one prefix count per record
        line = block.first_line
        for _, sep, body in records:
            lines.append(line)
            line += 1 + body.count(NL) + (1 if sep else 0)
    return ParsedBlock(ids, sequences, lines, block.first_record, joined)


#: A record id as Biopython takes it from a header line: after ``>``, up to the first byte that ``str.split()`` treats
#: as white space in ASCII text (space, \t \n \v \f \r and \x1c-\x1f); at the start of a block, and after each newline.
_FIRST_ID = re.compile(rb">([^\s\x1c-\x1f]+)")
_LATER_IDS = re.compile(rb"\n>([^\s\x1c-\x1f]+)")


def _header_ids(data: bytes, n_records: int) -> list[str] | None:
    """The ids of the ``n_records`` records of ``data`` (a block starting at a header), found for all headers at once:
    one regular-expression pass over the block (its literal ``\\n>`` is searched in C), then one decode and split.
    ``None`` (the caller goes header by header, and names a bad one) when a header is not ASCII or has white space or
    nothing right after ``>`` (such a header yields no match, so the count falls short), and when the block is not
    all ASCII (a header's description must then be checked for UTF-8, as Biopython reads it as text)."""
    if not data.isascii():
        return None
    first = _FIRST_ID.match(data)
    later = _LATER_IDS.findall(data)
    if first is None or len(later) != n_records - 1:
        return None
    return b" ".join([first.group(1), *later]).decode("ascii").split(" ")


def _wrapped_records(data: bytes) -> tuple[list[bytes], np.ndarray, bytes] | None:
    """Sequences, header line offsets and the sequences end to end of a block of records whose sequences span any
    number of lines; ``None`` when a sequence holds white space other than line breaks.

    Found with a few whole-block operations instead of a split, a partition and a translate per record (this runs on
    every read; FASTA wrapped at 60 or 80 columns is the common layout): the headers are the lines starting with
    ``>``, all sequence lines are joined and stripped of white space in one pass, and each record's share of that text
    is its bytes between headers minus its newlines (counted by binary search in the newline offsets).
    """
    size = len(data)
    text = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(text == NL[0])
    line_starts = np.concatenate([[0], newlines + 1])
    if line_starts[-1] == size:
        line_starts = line_starts[:-1]
    header_lines = np.flatnonzero(text[line_starts] == ord(">"))
    heads = line_starts[header_lines]
    head_ends = np.append(newlines, size)[np.searchsorted(newlines, heads)]  # the header's newline (or the end)
    body_starts = np.minimum(head_ends + 1, size)
    body_ends = np.append(heads[1:], size)
    breaks = np.searchsorted(newlines, body_ends) - np.searchsorted(newlines, body_starts)
    lengths = body_ends - body_starts - breaks
    bodies = b"".join([data[a:b] for a, b in zip(body_starts.tolist(), body_ends.tolist())])
    joined = bodies.translate(None, _WHITESPACE)
    if len(joined) != int(lengths.sum()):  # white space other than line breaks: lengths would be wrong
        return None
    ends = np.cumsum(lengths)
    sequences = [joined[a:b] for a, b in zip((ends - lengths).tolist(), ends.tolist())]
    return sequences, header_lines, joined


def _header_line(block: RawBlock, records: list[tuple[bytes, bytes, bytes]], index: int) -> int:
    """Line number of the header of record ``index`` of ``block`` (for messages: counts the lines before it)."""
    return block.first_line + sum(1 + body.count(NL) + (1 if sep else 0) for _, sep, body in records[:index])


def _locate_header_error(block: RawBlock, records: list[tuple[bytes, bytes, bytes]]) -> None:
    """Raise the :class:`InputError` for the first header that is not UTF-8 text or has no id."""
    for i, (header, _, _) in enumerate(records):
        number, line = block.first_record + i, _header_line(block, records, i)
        try:
            title = header.decode("utf-8")
        except UnicodeDecodeError as exc:
            shown = header.decode("utf-8", "backslashreplace").split(None, 1)
            raise InputError(
                f"{block.source}: record {number} ({shown[0] if shown else '?'}), line {line}: header is not valid "
                f"text (byte 0x{header[exc.start]:02x} at column {exc.start + 2} is not UTF-8)"
            ) from None
        if not title.split(None, 1):
            raise InputError(f"{block.source}: record {number} (line {line}): header has no sequence id")
    raise AssertionError("no bad header found")  # pragma: no cover


def _check_utf8(source: str, number: int, record_id: str, header_line: int, body: bytes) -> None:
    """Sequence lines may hold non-ASCII letters (they make the read ``invalid_characters``) but must be UTF-8."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = header_line + 1 + body.count(b"\n", 0, exc.start)
        raise InputError(
            f"{source}: record {number} ({record_id}), line {lineno}: not valid text (byte 0x{body[exc.start]:02x} is "
            "not UTF-8), not a FASTA file"
        ) from None


def read_fasta(path: str | os.PathLike[str]) -> Iterator[FastaRecord]:
    """Stream the records of ``path`` (a file, ``-`` or a stream path); memory stays at one block of records.

    Raises :class:`InputError` (naming the file, record and line) for binary or non-FASTA content and for a header
    without an id. An empty file yields nothing: callers decide whether that is an error.
    """
    with InputStream(path) as stream:
        for block in read_blocks(stream):
            parsed = parse_block(block, with_lines=True)
            for i, (rid, seq, line) in enumerate(zip(parsed.ids, parsed.sequences, parsed.lines)):
                yield FastaRecord(rid, seq.decode("utf-8"), parsed.first_record + i, line)


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
