"""The one HDF5 writer and reader: a dataset ``ids`` (UTF-8) and a float matrix in the row order of ``ids``.

Embed stages write ``embeddings``, merge writes ``features``. Attributes record what produced the rows (model name and
checksum, precision, dimension, tool version) so a resumed run can tell a reusable file from a stale one. Files are
written under a temp name and renamed when every row is present; ``complete`` is set last, so a truncated or killed
write is never read as done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from virnucpro import __version__
from virnucpro.atomic import temp_name
from virnucpro.errors import InputError, NumericError

STORE_DTYPES = {"float32": np.float32, "float16": np.float16}
_STR = h5py.string_dtype(encoding="utf-8")


@dataclass
class H5Table:
    """A loaded file: ``ids`` in row order, the ``matrix`` (float32 in memory) and the file's attributes."""

    ids: list[str]
    matrix: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)


class MatrixWriter:
    """Write a [len(ids), dim] matrix row block by row block, in any order, then commit atomically.

    Rows are placed by their index in ``ids`` so an embedder may compute in length-sorted order while the file keeps
    input order, with host memory bounded by one batch. Non-finite values are refused with the ids named.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        ids: Sequence[str],
        dim: int,
        *,
        dataset: str = "embeddings",
        attrs: Mapping[str, Any] | None = None,
        store_dtype: str = "float32",
    ) -> None:
        if store_dtype not in STORE_DTYPES:
            raise ValueError(f"store dtype must be one of {sorted(STORE_DTYPES)}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ids = list(ids)
        self.dim = int(dim)
        self.dataset = dataset
        self._tmp = temp_name(self.path)
        self._filled = np.zeros(len(self.ids), dtype=bool)
        self._invalid = np.zeros(len(self.ids), dtype=bool)
        self._fh = h5py.File(self._tmp, "w")
        self._fh.create_dataset("ids", data=np.array(self.ids, dtype=object), dtype=_STR)
        chunk_rows = max(1, min(len(self.ids), max(1, (1 << 20) // max(1, self.dim * 4))))
        self._data = self._fh.create_dataset(
            dataset,
            shape=(len(self.ids), self.dim),
            dtype=STORE_DTYPES[store_dtype],
            chunks=(chunk_rows, self.dim) if self.ids and self.dim else None,
        )
        base = {"dim": self.dim, "rows": len(self.ids), "tool_version": __version__, "store_dtype": store_dtype}
        for key, value in {**base, **dict(attrs or {})}.items():
            self._fh.attrs[key] = value
        self._fh.attrs["complete"] = False

    def write_rows(self, rows: np.ndarray | Sequence[int], values: np.ndarray) -> None:
        """Store ``values[i]`` at row ``rows[i]``; raises :class:`NumericError` on NaN/Inf, naming the ids."""
        rows = np.asarray(rows, dtype=np.int64)
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (len(rows), self.dim):
            raise ValueError(f"expected {(len(rows), self.dim)} values, got {values.shape}")
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            names = [self.ids[i] for i in rows[bad][:5]]
            raise NumericError(
                f"{self.path}: non-finite values (NaN/Inf) computed for {int(bad.sum())} sequence(s), e.g. {names}"
                " — nothing was written"
            )
        order = np.argsort(rows, kind="stable")
        self._data[rows[order]] = values[order]
        self._filled[rows] = True

    def mark_invalid(self, rows: np.ndarray | Sequence[int]) -> None:
        """Record rows that could not be computed (a sequence too large for the device): stored as zeros with
        ``valid`` False, so downstream stages drop them explicitly instead of scoring garbage."""
        rows = np.sort(np.asarray(rows, dtype=np.int64))
        self._data[rows] = np.zeros((len(rows), self.dim), dtype=np.float32)
        self._filled[rows] = True
        self._invalid[rows] = True

    def commit(self) -> Path:
        """Check every row was written, mark complete, close and rename into place."""
        missing = np.flatnonzero(~self._filled)
        if missing.size:
            self.abort()
            raise RuntimeError(f"{self.path}: {missing.size} rows never written, e.g. {self.ids[missing[0]]}")
        if self._invalid.any():
            self._fh.create_dataset("valid", data=~self._invalid)
            self._fh.attrs["invalid_rows"] = int(self._invalid.sum())
        self._fh.attrs["complete"] = True
        self._fh.flush()
        self._fh.close()
        with open(self._tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temp file (used on errors and interrupts)."""
        try:
            self._fh.close()
        except Exception:  # already closed
            pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "MatrixWriter":
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.abort()


def write_matrix(
    path: str | os.PathLike[str],
    ids: Sequence[str],
    matrix: np.ndarray,
    *,
    dataset: str = "embeddings",
    attrs: Mapping[str, Any] | None = None,
    store_dtype: str = "float32",
) -> Path:
    """Write a whole matrix at once (merge stage, tests)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    dim = matrix.shape[1] if matrix.ndim == 2 else 0
    with MatrixWriter(path, ids, dim, dataset=dataset, attrs=attrs, store_dtype=store_dtype) as writer:
        if len(ids):
            writer.write_rows(np.arange(len(ids)), matrix)
        return writer.commit()


class MatrixReader:
    """Open a complete file for block-wise reading, so predict and merge stay flat in memory on big shards.

    Opening validates it: a truncated, incomplete or inconsistent file is an :class:`InputError`, never read as done.
    """

    def __init__(self, path: str | os.PathLike[str], dataset: str | None = None) -> None:
        self.path = Path(path)
        try:
            self._fh = h5py.File(self.path, "r")
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.path}: unreadable HDF5 file ({exc})") from None
        try:
            name = dataset or ("features" if "features" in self._fh else "embeddings")
            if "ids" not in self._fh or name not in self._fh:
                raise InputError(f"{self.path}: not a virnucpro HDF5 file (needs datasets 'ids' and '{name}')")
            self.attrs = {k: _plain(v) for k, v in self._fh.attrs.items()}
            if not self.attrs.get("complete", False):
                raise InputError(f"{self.path}: incomplete file (its writer did not finish); delete it and re-run")
            self.ids = [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in self._fh["ids"][()]]
            self._data = self._fh[name]
            #: False for rows that could not be computed (see :meth:`MatrixWriter.mark_invalid`).
            self.valid = np.asarray(self._fh["valid"][()], dtype=bool) if "valid" in self._fh else np.ones(len(self.ids), dtype=bool)
            if self._data.ndim != 2 or self._data.shape[0] != len(self.ids) or self.attrs.get("rows") != len(self.ids):
                raise InputError(f"{self.path}: {len(self.ids)} ids but matrix of shape {self._data.shape}")
        except InputError:
            self._fh.close()
            raise
        except (OSError, KeyError, ValueError) as exc:
            self._fh.close()
            raise InputError(f"{self.path}: unreadable HDF5 file ({exc})") from None

    @property
    def dim(self) -> int:
        return int(self._data.shape[1])

    def rows(self, index: np.ndarray | slice) -> np.ndarray:
        """Rows by slice or by (any order of) indices, as float32."""
        try:
            if isinstance(index, slice):
                return np.asarray(self._data[index], dtype=np.float32)
            index = np.asarray(index, dtype=np.int64)
            order = np.argsort(index, kind="stable")
            out = np.empty((len(index), self.dim), dtype=np.float32)
            if len(index):
                out[order] = self._data[index[order]]
            return out
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.path}: unreadable rows ({exc})") from None

    def blocks(self, block_rows: int = 65536):
        """Yield ``(start, ids, matrix)`` blocks in row order."""
        for start in range(0, len(self.ids), block_rows):
            stop = min(start + block_rows, len(self.ids))
            yield start, self.ids[start:stop], self.rows(slice(start, stop))

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "MatrixReader":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def read_matrix(path: str | os.PathLike[str], dataset: str | None = None) -> H5Table:
    """Load a whole complete file into memory (tests, small shards)."""
    with MatrixReader(path, dataset) as reader:
        return H5Table(reader.ids, reader.rows(slice(None)), reader.attrs)


def h5_is_complete(path: str | os.PathLike[str], expect: Mapping[str, Any] | None = None) -> bool:
    """True when ``path`` opens, is marked complete, and every attribute in ``expect`` matches (resume check)."""
    try:
        with h5py.File(path, "r") as fh:
            if not bool(fh.attrs.get("complete", False)):
                return False
            n = fh["ids"].shape[0]
            if int(fh.attrs.get("rows", -1)) != n:
                return False
            if not any(name in fh and fh[name].shape[0] == n for name in ("embeddings", "features")):
                return False
            for key, value in (expect or {}).items():
                if _plain(fh.attrs.get(key)) != value:
                    return False
    except (OSError, KeyError, ValueError):
        return False
    return True


def _plain(value: Any) -> Any:
    """HDF5 attribute → plain Python (numpy scalars and bytes become int/float/bool/str)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value
