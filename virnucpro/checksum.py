"""Content checksums of inputs and model files, recorded in manifests and HDF5 attributes.

Hashing a multi-GB ESM-2 checkpoint costs tens of seconds, so a digest is cached per (path, size, mtime) in this
process and, where the folder is writable, in a hidden sidecar file beside the model.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

_CHUNK = 1 << 22
_memo: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of one file, cached by path, size and modification time."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _memo:
        return _memo[key]
    sidecar = path.with_name(f".{path.name}.sha256")
    try:
        cached = json.loads(sidecar.read_text())
        if cached.get("size") == st.st_size and cached.get("mtime_ns") == st.st_mtime_ns:
            _memo[key] = cached["sha256"]
            return cached["sha256"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    value = digest.hexdigest()
    _memo[key] = value
    if st.st_size > (64 << 20):
        try:
            sidecar.write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": value}))
        except OSError:
            pass
    return value


def tree_sha256(paths: list[Path]) -> str:
    """One digest over several files (a model folder): the names and digests of each, in the order given."""
    digest = hashlib.sha256()
    for p in paths:
        digest.update(f"{Path(p).name}\0{file_sha256(p)}\n".encode())
    return digest.hexdigest()
