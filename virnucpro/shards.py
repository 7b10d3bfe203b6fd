"""The shard files of the prepare stage: which shard each read goes to, and writing each pair of FASTA files.

Shards are balanced by ESM-2 tokens (protein length + BOS/EOS), the cost that dominates embedding time; a read's
frames stay together and in their original order inside one shard. Each pair is written under temp names and renamed
by :meth:`ShardSet.finish`, and hashed as it is written, so the manifest needs no second read of the files.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from virnucpro.atomic import names_path, temp_name


@dataclass
class Shard:
    """One pair of shard files being written (temp names until :meth:`finish`)."""

    index: int
    nuc_path: Path
    prot_path: Path
    frames: int = 0
    tokens: int = 0
    reads: int = 0
    _nuc: BinaryIO | None = field(default=None, repr=False)
    _prot: BinaryIO | None = field(default=None, repr=False)
    _tmp: tuple[Path, Path] | None = field(default=None, repr=False)
    # checksums of what is written, so the manifest needs no second read of the shard files
    nuc_sha256: Any = field(default_factory=hashlib.sha256, repr=False)
    prot_sha256: Any = field(default_factory=hashlib.sha256, repr=False)

    def open(self) -> None:
        self._tmp = (temp_name(self.nuc_path), temp_name(self.prot_path))
        with names_path(self.nuc_path):
            self._nuc = open(self._tmp[0], "wb")
            self._prot = open(self._tmp[1], "wb")

    def write(self, nuc: bytes | memoryview, prot: bytes | memoryview) -> None:
        if self._nuc is None:
            self.open()
        assert self._nuc is not None and self._prot is not None
        with names_path(self.nuc_path):
            self._nuc.write(nuc)
            self._prot.write(prot)
        self.nuc_sha256.update(nuc)
        self.prot_sha256.update(prot)

    def finish(self) -> None:
        if self._nuc is None:
            self.open()
        assert self._nuc is not None and self._prot is not None and self._tmp is not None
        with names_path(self.nuc_path):
            self._nuc.close()
            self._prot.close()
            self._tmp[0].replace(self.nuc_path)
            self._tmp[1].replace(self.prot_path)

    def discard(self) -> None:
        for handle in (self._nuc, self._prot):
            if handle is not None:
                with contextlib.suppress(OSError):
                    handle.close()
        for path in self._tmp or ():
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


class ShardSet:
    """Assigns reads to shards: least-loaded of ``n`` fixed shards (ties: lowest index), or a new shard every
    ``tokens_per_shard``. The least-loaded shard comes from a heap, so 1000 shards cost no more per read than one."""

    def __init__(self, outdir: Path, prefix: str, n_shards: int | None, tokens_per_shard: int | None) -> None:
        self.outdir, self.prefix = outdir, prefix
        self.tokens_per_shard = tokens_per_shard
        self.shards: list[Shard] = [self._new(i + 1) for i in range(n_shards or 1)]
        self.fixed = tokens_per_shard is None
        self.single = self.fixed and len(self.shards) == 1
        self._heap = [(0, s.index) for s in self.shards]

    def _new(self, index: int) -> Shard:
        stem = f"{self.prefix}_{index:04d}"
        return Shard(index, self.outdir / f"{stem}.nuc.fa", self.outdir / f"{stem}.prot.fa")

    def assign(self, frames: int, tokens: int) -> int:
        """Choose the shard of one read with ``frames`` > 0 frames worth ``tokens``; returns its 1-based number."""
        if self.fixed:
            load, index = heapq.heappop(self._heap)
            heapq.heappush(self._heap, (load + tokens, index))
            shard = self.shards[index - 1]
        else:
            shard = self.shards[-1]
            assert self.tokens_per_shard is not None
            if shard.frames and shard.tokens + tokens > self.tokens_per_shard:
                shard = self._new(len(self.shards) + 1)
                self.shards.append(shard)
        shard.frames += frames
        shard.tokens += tokens
        shard.reads += 1
        return shard.index

    def assign_many(self, frames: list[int], tokens: list[int]) -> list[int]:
        """:meth:`assign` for consecutive reads (each with frames), in order; the same choices, one call per block."""
        if not self.fixed:
            return [self.assign(f, t) for f, t in zip(frames, tokens)]
        heap, pop, push = self._heap, heapq.heappop, heapq.heappush
        chosen = []
        for t in tokens:
            load, index = pop(heap)
            push(heap, (load + t, index))
            chosen.append(index)
        for index, f, t in zip(chosen, frames, tokens):
            shard = self.shards[index - 1]
            shard.frames += f
            shard.tokens += t
            shard.reads += 1
        return chosen

    def finish(self) -> list[Shard]:
        """Close and rename the shards that hold frames (always at least one, possibly empty)."""
        kept = [s for s in self.shards if s.frames] or self.shards[:1]
        keep = {s.index for s in kept}
        for shard in self.shards:
            if shard.index in keep:
                shard.finish()
            else:
                shard.discard()
        return kept

    def discard(self) -> None:
        for shard in self.shards:
            shard.discard()

