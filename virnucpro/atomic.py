"""Atomic output: every file appears under its final name only when complete (temp file in the same folder + rename).

A crash, SIGKILL or pre-emption therefore leaves either the previous complete file or a hidden ``.*.tmp-*`` file that
no reader ever opens; re-runs overwrite nothing until they finish. A failed write (disk full, read-only file system,
permission denied) removes its temp file and re-raises the ``OSError`` with the final path attached, so the CLI's one
conversion (:meth:`~virnucpro.errors.StorageError.from_os_error`) can name the file that could not be written.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator, TextIO

from virnucpro.errors import StorageError

TMP_MARK = ".tmp-"


def temp_name(final: Path) -> Path:
    """A unique hidden sibling of ``final``: same folder (so rename is atomic), never matched by output globs."""
    return final.with_name(f".{final.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


@contextlib.contextmanager
def names_path(path: str | os.PathLike[str]) -> Iterator[None]:
    """Attach ``path`` to an ``OSError`` raised without a file name (``write()`` on a full disk raises plain ENOSPC)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = os.fspath(path)
        raise


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path to write; on normal exit fsync and rename it to ``final``, on error remove it."""
    final = Path(final)
    tmp = temp_name(final)
    try:
        with names_path(final):
            final.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
    finally:
        # never let a cleanup failure (read-only file system, vanished folder) hide the error that got us here
        with contextlib.suppress(OSError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_text(final: str | os.PathLike[str]) -> Iterator[TextIO]:
    """Open a text file for writing that appears under ``final`` only once closed without error."""
    with atomic_path(final) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as out:
            yield out


class AtomicGroup:
    """Outputs that must change together (a sample's tables): each is written under its temp name; :meth:`commit`
    closes and fsyncs them all before renaming any, so a failure (a full disk usually shows at close or fsync) leaves
    every final name as it was, never a mix of this run's tables and an earlier run's."""

    def __init__(self) -> None:
        self._files: list[tuple[Path, Path, TextIO | None]] = []

    def text(self, final: str | os.PathLike[str]) -> TextIO:
        """A text file (UTF-8, ``\\n`` line ends) that becomes ``final`` at commit."""
        final = Path(final)
        tmp = temp_name(final)
        with names_path(final):
            final.parent.mkdir(parents=True, exist_ok=True)
            handle = open(tmp, "w", encoding="utf-8", newline="\n")
        self._files.append((final, tmp, handle))
        return handle

    def path(self, final: str | os.PathLike[str]) -> Path:
        """A temp path for a writer that opens files itself; it must be closed before the group commits."""
        final = Path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_name(final)
        self._files.append((final, tmp, None))
        return tmp

    def commit(self) -> None:
        for final, tmp, handle in self._files:
            with names_path(final):
                if handle is not None:
                    handle.close()
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
        for final, tmp, _ in self._files:
            with names_path(final):
                os.replace(tmp, final)
        self._files = []

    def discard(self) -> None:
        for _, tmp, handle in self._files:
            if handle is not None:
                with contextlib.suppress(OSError, ValueError):
                    handle.close()
            with contextlib.suppress(OSError):
                tmp.unlink()
        self._files = []


@contextlib.contextmanager
def atomic_group() -> Iterator[AtomicGroup]:
    """``with atomic_group() as group: out = group.text(path)``: all files appear on normal exit, none on error."""
    group = AtomicGroup()
    try:
        yield group
        group.commit()
    finally:
        group.discard()


def check_output_folder(folder: str | os.PathLike[str]) -> None:
    """Refuse, before any work, an output folder that cannot be one: it, or a folder above it, is a file.

    Creates nothing; permissions and free space are learnt from the first real write, whose error names the path.
    """
    path = Path(folder)
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            if not candidate.is_dir():
                where = "" if candidate == path else f" (needed for {path})"
                raise StorageError(f"{candidate}: is a file, but a folder is needed here{where}")
            return


def make_output_folder(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` (and parents); failures become one :class:`StorageError` line naming the path and cause."""
    path = Path(folder)
    check_output_folder(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError.from_os_error(exc, path) from None
    return path


def remove_stale_temps(folder: str | os.PathLike[str]) -> int:
    """Delete temp files left in ``folder`` by killed writers of this host; returns how many were removed."""
    removed = 0
    for path in Path(folder).glob(f".*{TMP_MARK}*"):
        pid_part = path.name.rsplit(TMP_MARK, 1)[1].split("-", 1)[0]
        if pid_part.isdigit() and _alive(int(pid_part)) and int(pid_part) != os.getpid():
            continue
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
