"""Errors the CLI turns into one clear line and a non-zero exit (never a traceback).

Each class carries its process exit status. :data:`EXIT_CODES` is the single table of every status ``virnucpro`` can
end with; ``--help`` prints it and a test checks the README's table against it, so the three cannot drift apart.
"""

from __future__ import annotations

import errno
import os


class VirNucProError(Exception):
    """Base class: the message is shown to the user as is; ``exit_code`` is the process status."""

    exit_code = 1


class InputError(VirNucProError):
    """Bad user input (FASTA, TSV, HDF5, option values): the message names the file and, where known, the record."""

    exit_code = 2


class ModelError(VirNucProError):
    """A model file or folder that is missing, unsafe, or does not match its architecture or the other models."""

    exit_code = 3


class NumericError(VirNucProError):
    """NaN/Inf found in computed embeddings or scores; the message names the ids."""

    exit_code = 4


class StorageError(VirNucProError):
    """The operating system refused to read or write a file: disk full, read-only file system, permission denied,
    a file where a folder is needed. The message names the path and the cause; no output is left half-written."""

    exit_code = 5

    @classmethod
    def from_os_error(cls, exc: OSError, where: str | os.PathLike[str] | None = None) -> "StorageError":
        """One line from an ``OSError``: ``PATH: No space left on device (ENOSPC)``.

        h5py and other C libraries raise ``OSError`` without ``filename``; ``where`` (the output being written) then
        names the place. A path component that is a file where a folder is needed is said in those words.
        """
        code = errno.errorcode.get(exc.errno or 0)
        cause = exc.strerror or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        if code and code not in cause:
            cause = f"{cause} ({code})"
        path = exc.filename if exc.filename is not None else where
        if path is None:
            return cls(cause)
        path = os.fsdecode(path)
        if exc.errno in (errno.EEXIST, errno.ENOTDIR):
            blocker = _first_file_on(path)
            if blocker is not None:
                return cls(f"{blocker}: is a file, but a folder is needed here ({path})" if blocker != path
                           else f"{path}: is a file, but a folder is needed here")
        if exc.filename2 is not None:
            path = f"{path} -> {os.fsdecode(exc.filename2)}"
        return cls(f"{path}: {cause}")


def _first_file_on(path: str) -> str | None:
    """The first component of ``path`` (from the root) that exists and is not a folder, if any."""
    current = os.path.abspath(path)
    chain = []
    while True:
        chain.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for candidate in reversed(chain):
        if os.path.lexists(candidate) and not os.path.isdir(candidate):
            return candidate if os.path.isabs(path) else os.path.relpath(candidate)
    return None


class FolderBusy(VirNucProError):
    """Another ``virnucpro`` process holds the lock on the output folder; waiting or another ``--outdir`` helps."""

    exit_code = 6


class Interrupted(BaseException):
    """The run was stopped by SIGTERM after leaving every file consistent.

    Raised from the signal handler, so it can surface inside any code, logging included: like ``KeyboardInterrupt`` it
    is a ``BaseException``, because ``logging`` (and any other ``except Exception``) would otherwise swallow it,
    print a traceback and let the run go on after the scheduler asked it to stop.
    """

    exit_code = 143


#: Every exit status of ``virnucpro``, in the order ``--help`` and the README list them.
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "unexpected internal error (please report it with the command line and run.log)",
    InputError.exit_code: "bad input or command line: missing/unreadable FASTA, a directory as input, invalid option",
    ModelError.exit_code: "model file or folder missing, unsafe, malformed, or not matching the other models",
    NumericError.exit_code: "NaN/Inf in computed embeddings or scores",
    StorageError.exit_code: "cannot read or write a file: disk full, read-only file system, permission denied, --outdir is a file",
    FolderBusy.exit_code: "another virnucpro run holds the lock on --outdir",
    130: "interrupted with Ctrl-C (finished outputs are kept; re-run to resume)",
    137: "out of host memory (or killed with SIGKILL)",
    Interrupted.exit_code: "stopped by SIGTERM (finished outputs are kept; re-run to resume)",
}
