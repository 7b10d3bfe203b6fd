"""Opening one FASTA input as a byte stream: plain, gzip, bzip2, xz (and zstd with ``zstandard``) recognised by
content, also on pipes that cannot seek back; a UTF-8 byte order mark skipped; the SHA-256 of the bytes as stored
computed on the way, so a stream is recorded in a manifest without being read twice. Apart from the FASTA parsing
(:mod:`virnucpro.fasta`) because it is about files and codecs, not records.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import sys
import zlib
from typing import BinaryIO

from virnucpro.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
#: Compressed formats recognised by their first bytes: name → magic. bzip2's "BZh" is followed by the block size digit.
MAGIC = {"gzip": GZIP_MAGIC, "bzip2": b"BZh", "xz": b"\xfd7zXZ\x00", "zstd": b"\x28\xb5\x2f\xfd"}
_SNIFF = max(len(m) for m in MAGIC.values())
UTF8_BOM = b"\xef\xbb\xbf"
STDIN = "-"
READ_BYTES = 1 << 20


def display_name(path: str | os.PathLike[str]) -> str:
    """How an input is named in messages: ``<stdin>`` for ``-``, the path as given otherwise."""
    return "<stdin>" if str(path) == STDIN else str(path)


def check_input(path: str | os.PathLike[str]) -> None:
    """Raise the reader's own :class:`InputError` for an input that cannot be opened (missing, a directory, not
    readable), without opening it, so a caller can refuse early with the same words the reader would use. Streams
    (``-``, FIFOs, ``/dev/stdin``) pass: they can only be judged by reading them."""
    if str(path) == STDIN:
        return
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _refusal(path, exc) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: is a directory, not a FASTA file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")


def _refusal(path: str | os.PathLike[str], exc: OSError) -> InputError:
    """The one wording of "this input cannot be opened", shared by :func:`check_input` and the reader."""
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{path}: no such file")
    if isinstance(exc, IsADirectoryError):
        return InputError(f"{path}: is a directory, not a FASTA file")
    if isinstance(exc, PermissionError):
        return InputError(f"{path}: permission denied")
    return InputError(f"{path}: cannot open ({exc.strerror or exc})")


class _Hashing(io.RawIOBase):
    """Raw byte stream that hashes what passes through (the file's own bytes, before any decompression)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.digest = raw, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = self.raw.readinto(buffer)
        if n:
            self.digest.update(memoryview(buffer)[:n])
        return n or 0


class _Prefixed(io.RawIOBase):
    """Serves bytes already read (to sniff the format) before the rest of the stream: pipes cannot seek back."""

    def __init__(self, head: bytes, rest: io.RawIOBase) -> None:
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        return self.rest.readinto(buffer) or 0


class InputStream:
    """One input opened for reading: decompressed bytes via :meth:`read`, the SHA-256 of the file's bytes after."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.name = display_name(path)
        try:
            raw: BinaryIO = sys.stdin.buffer if str(path) == STDIN else open(path, "rb", buffering=0)
        except OSError as exc:
            raise _refusal(path, exc) from None
        self._owned = str(path) != STDIN
        self._raw = raw
        self._hashing = _Hashing(raw)
        head = b""
        try:
            while len(head) < _SNIFF:  # a pipe may deliver one byte at a time
                more = self._hashing.read(_SNIFF - len(head))
                if not more:
                    break
                head += more
        except OSError as exc:
            self.close()
            raise InputError(f"{self.name}: cannot read ({exc.strerror or exc})") from None
        self.format = sniff_format(head)
        self.gzip = self.format == "gzip"
        try:
            rest = io.BufferedReader(_Prefixed(head, self._hashing), READ_BYTES)
            self._stream: io.BufferedIOBase = _decompressed(self.format, rest)
        except InputError as exc:
            self.close()
            raise InputError(f"{self.name}: {exc}") from None
        self._at_start = True

    def read(self, n: int = READ_BYTES) -> bytes:
        if not self._at_start:
            return self._stream.read(n)
        self._at_start = False  # the first read: skip a UTF-8 byte order mark (at least 3 bytes, to see one whole)
        data = self._stream.read(max(n, len(UTF8_BOM)))
        return data[len(UTF8_BOM):] if data.startswith(UTF8_BOM) else data

    def sha256(self) -> str:
        """Digest of every byte of the input; reads what is left first, so it is the whole file's checksum."""
        while self._hashing.read(READ_BYTES):
            pass
        return self._hashing.digest.hexdigest()

    def close(self) -> None:
        if self._owned:
            self._raw.close()

    def __enter__(self) -> InputStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sniff_format(head: bytes) -> str:
    """``plain`` or the compressed format whose magic bytes start ``head`` (the first bytes of the input)."""
    for name, magic in MAGIC.items():
        if head.startswith(magic) and (name != "bzip2" or head[3:4] in b"123456789"):
            return name
    return "plain"


def _decompressed(fmt: str, raw: io.BufferedReader) -> io.BufferedIOBase:
    """A reader of the decompressed bytes of ``raw`` (standard library codecs; zstd via the optional ``zstandard``)."""
    if fmt == "plain":
        return raw
    if fmt == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if fmt == "bzip2":
        return bz2.BZ2File(raw, mode="rb")
    if fmt == "xz":
        return lzma.LZMAFile(raw, mode="rb")
    try:
        import zstandard
    except ImportError:
        raise InputError(
            "zstd-compressed (.zst), which needs the 'zstandard' package (pip install zstandard); "
            "or decompress it first (zstd -d), or give it as gzip, bzip2 or xz"
        ) from None
    return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True), READ_BYTES)


#: What a corrupt or truncated compressed stream raises, per codec (zstandard's error is an ``Exception``).
CODEC_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error, lzma.LZMAError)
try:
    from zstandard import ZstdError

    CODEC_ERRORS += (ZstdError,)
except ImportError:
    pass
