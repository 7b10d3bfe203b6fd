"""The output-folder lock shared by every stage that writes into a folder (``prepare``, ``run``).

Two processes writing the same shards or tables would interleave renames and leave a folder that matches no single
command, so each holds an exclusive, non-blocking ``flock`` on ``<folder>/.virnucpro.lock`` while it writes: the
second one fails at once with :class:`~virnucpro.errors.FolderBusy`. The kernel drops the lock when its holder exits,
even after SIGKILL, so a crash never leaves a folder locked.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Iterator

from virnucpro.errors import FolderBusy

LOCK_NAME = ".virnucpro.lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold the exclusive lock on ``folder`` (created if needed) for the duration of the ``with`` block."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fh = open(folder / LOCK_NAME, "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise FolderBusy(
            f"{folder}: another virnucpro run is using this folder (lock held by a running 'virnucpro run' or "
            "'virnucpro prepare'); wait for it or use another --outdir"
        ) from None
    try:
        yield
    finally:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()
