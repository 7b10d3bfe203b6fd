"""The one HDF5 writer and reader: a dataset ``ids`` (UTF-8) and a float matrix in the row order of ``ids``.

Embed stages write ``embeddings``, merge writes ``features``. Attributes record what produced the rows (model name and
checksum, precision, dimension, tool version) so a resumed run can tell a reusable file from a stale one, and what
they are (``kind``, ``shard``, ``rows``: :mod:`virnucpro.shards_check`) so a file handed to the wrong step is refused. Files are
written under a temp name and renamed when every row is present; ``complete`` is set last, so a truncated or killed
write is never read as done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

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
    """Write a [rows, dim] matrix block by block, then commit atomically.

    Two ways to fill it. With ``ids`` given up front (merge), :meth:`write_rows` places rows by index in any order.
    With ``ids=None`` (the embedding engine) the file grows: :meth:`append` adds ids and rows at the end in input
    order, so the writer never needs the whole id list and host memory stays bounded by one block whatever the
    input size. Non-finite values are refused with the ids named.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        ids: Sequence[str] | None,
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
        self.appending = ids is None
        self.ids = [] if ids is None else list(ids)
        self.dim = int(dim)
        self.dataset = dataset
        if self.appending and self.dim < 1:
            raise ValueError("a growing (ids=None) file needs a positive dim")
        self._tmp = temp_name(self.path)
        self._filled = np.zeros(len(self.ids), dtype=bool)
        self._invalid = np.zeros(len(self.ids), dtype=bool)
        self._invalid_appended: list[np.ndarray] = []  # appending mode: indices of invalid rows, block by block
        self._rows = 0  # appending mode: rows written so far
        self._fh = h5py.File(self._tmp, "w")
        # about 1 MiB per HDF5 chunk: big enough for fast sequential writes, small enough for random reads
        chunk_rows = max(1, (1 << 20) // max(1, self.dim * 4))
        if self.appending:
            self._ids = self._fh.create_dataset("ids", shape=(0,), maxshape=(None,), dtype=_STR, chunks=(16384,))
            self._data = self._fh.create_dataset(
                dataset, shape=(0, self.dim), maxshape=(None, self.dim), dtype=STORE_DTYPES[store_dtype],
                chunks=(chunk_rows, self.dim),
            )
        else:
            self._fh.create_dataset("ids", data=np.array(self.ids, dtype=object), dtype=_STR)
            self._data = self._fh.create_dataset(
                dataset,
                shape=(len(self.ids), self.dim),
                dtype=STORE_DTYPES[store_dtype],
                chunks=(min(len(self.ids), chunk_rows), self.dim) if self.ids and self.dim else None,
            )
        base = {"dim": self.dim, "rows": len(self.ids), "tool_version": __version__, "store_dtype": store_dtype}
        for key, value in {**base, **dict(attrs or {})}.items():
            self._fh.attrs[key] = value
        self._fh.attrs["complete"] = False

    def write_rows(self, rows: np.ndarray | Sequence[int], values: np.ndarray) -> None:
        """Store ``values[i]`` at row ``rows[i]``; raises :class:`NumericError` on NaN/Inf, naming the ids."""
        if self.appending:
            raise RuntimeError("write_rows needs the ids up front; a growing file is filled with append()")
        rows = np.asarray(rows, dtype=np.int64)
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (len(rows), self.dim):
            raise ValueError(f"expected {(len(rows), self.dim)} values, got {values.shape}")
        self._refuse_non_finite(values, lambda bad: [self.ids[i] for i in rows[bad][:5]])
        order = np.argsort(rows, kind="stable")
        self._data[rows[order]] = values[order]
        self._filled[rows] = True

    def append(self, ids: Sequence[str], values: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add ``ids`` and their rows at the end of a growing file (``ids=None`` at creation).

        ``valid`` (False = could not be computed, see :meth:`mark_invalid`) stores zeros for those rows whatever
        ``values`` holds; NaN/Inf in a valid row raise :class:`NumericError` naming the ids.
        """
        if not self.appending:
            raise RuntimeError("append() is for files created with ids=None")
        n = len(ids)
        values = np.asarray(values)
        if values.shape != (n, self.dim):
            raise ValueError(f"expected {(n, self.dim)} values, got {values.shape}")
        if valid is not None and not valid.all():
            values = np.where(valid[:, None], values, 0)
            self._invalid_appended.append(self._rows + np.flatnonzero(~valid))
        self._refuse_non_finite(values, lambda bad: [ids[i] for i in np.flatnonzero(bad)[:5]])
        if n == 0:
            return
        start, self._rows = self._rows, self._rows + n
        self._ids.resize((self._rows,))
        self._ids[start:] = np.array(ids, dtype=object)
        self._data.resize((self._rows, self.dim))
        self._data[start:] = values

    def _refuse_non_finite(self, values: np.ndarray, names: Callable[[np.ndarray], list[str]]) -> None:
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            raise NumericError(
                f"{self.path}: non-finite values (NaN/Inf) computed for {int(bad.sum())} sequence(s), e.g. {names(bad)}"
                " — nothing was written"
            )

    def mark_invalid(self, rows: np.ndarray | Sequence[int]) -> None:
        """Record rows that could not be computed (a sequence too large for the device): stored as zeros with
        ``valid`` False, so downstream stages drop them explicitly instead of scoring garbage."""
        if self.appending:
            raise RuntimeError("in a growing file, invalid rows are flagged through append(valid=...)")
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
        if self.appending:
            self._fh.attrs["rows"] = self._rows
            self._invalid = np.zeros(self._rows if self._invalid_appended else 0, dtype=bool)
            for block in self._invalid_appended:
                self._invalid[block] = True
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

    Opening validates it: a truncated file, one marked incomplete (``complete`` false) or one whose datasets and
    attributes disagree is an :class:`InputError`, never read as done. The ``complete``/``rows``/``dim`` attributes are
    checked when present and not required, so files in the documented layout from other tools are accepted.
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
            #: the matrix's dataset: ``features`` (merge) or ``embeddings`` (embed stages)
            self.dataset = name
            self.attrs = {k: _plain(v) for k, v in self._fh.attrs.items()}
            # Only the datasets are the documented layout; our attributes are optional, so a file written by another
            # tool is read. What is refused: a file explicitly marked unfinished, or one that contradicts itself.
            if "complete" in self.attrs and not self.attrs["complete"]:
                raise InputError(f"{self.path}: marked incomplete (attribute complete=false: its writer did not finish); delete it and re-run")
            self.ids = [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in self._fh["ids"][()]]
            self._data = self._fh[name]
            if self._data.ndim != 2:
                raise InputError(f"{self.path}: dataset '{name}' must be a 2-D matrix (rows x dims), has shape {self._data.shape}")
            if self._data.shape[0] != len(self.ids):
                raise InputError(f"{self.path}: {len(self.ids)} ids but dataset '{name}' has {self._data.shape[0]} rows")
            if "rows" in self.attrs and self.attrs["rows"] != len(self.ids):
                raise InputError(f"{self.path}: attribute rows={self.attrs['rows']} but the file holds {len(self.ids)} ids")
            if "dim" in self.attrs and self.attrs["dim"] != self._data.shape[1]:
                raise InputError(f"{self.path}: attribute dim={self.attrs['dim']} but dataset '{name}' has {self._data.shape[1]} columns")
            #: False for rows that could not be computed (see :meth:`MatrixWriter.mark_invalid`).
            self.valid = np.asarray(self._fh["valid"][()], dtype=bool) if "valid" in self._fh else np.ones(len(self.ids), dtype=bool)
            if self.valid.shape != (len(self.ids),):
                raise InputError(f"{self.path}: dataset 'valid' has shape {self.valid.shape}, expected ({len(self.ids)},)")
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
