"""Atomic output: every file appears under its final name only when complete (temp file in the same folder + rename).

A crash, SIGKILL or pre-emption therefore leaves either the previous complete file or a hidden ``.*.tmp-*`` file that
no reader ever opens; re-runs overwrite nothing until they finish.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator, TextIO

TMP_MARK = ".tmp-"


def temp_name(final: Path) -> Path:
    """A unique hidden sibling of ``final``: same folder (so rename is atomic), never matched by output globs."""
    return final.with_name(f".{final.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path to write; on normal exit fsync and rename it to ``final``, on error remove it."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(final)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_text(final: str | os.PathLike[str]) -> Iterator[TextIO]:
    """Open a text file for writing that appears under ``final`` only once closed without error."""
    with atomic_path(final) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as out:
            yield out


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
