"""BlockPool: prepare's blocks processed in worker processes, bulk bytes through shared memory, order and bytes kept."""

from __future__ import annotations

import dataclasses
from multiprocessing import get_context
from pathlib import Path

import pytest

from conftest import INPUT_FA
from virnucpro import blockpool
from virnucpro.blockpool import BlockPool
from virnucpro.fasta import read_blocks
from virnucpro.instream import InputStream
from virnucpro.readblock import BlockResult, process_block

ARGS = (300, "in.fa", True, True)  # chunk, label, write_windows, rows


def _blocks(path: Path, block_bytes: int) -> list:
    with InputStream(path) as stream:
        return list(read_blocks(stream, block_bytes))


def _as_tuple(result: BlockResult) -> tuple:
    """Every field, bulk fields as bytes and arrays as lists, for comparing a pooled result with a serial one."""
    out = []
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        out.append(bytes(value) if f.name in BlockResult.BULK else value.tolist() if hasattr(value, "tolist") else value)
    return tuple(out)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_results_match_serial_in_order_through_shared_memory(method: str) -> None:
    """Blocks travel in and results come back through the slots (memoryviews), the same as processing in place."""
    blocks = _blocks(INPUT_FA, 4000)
    assert len(blocks) > 8
    serial = [_as_tuple(process_block(b, *ARGS)) for b in blocks]
    pool = BlockPool(2, get_context(method), slot_bytes=1 << 20)
    try:
        results = pool.map(process_block, blocks, *ARGS)
        got = []
        for result in results:
            assert all(isinstance(getattr(result, name), memoryview) for name in BlockResult.BULK)
            got.append(_as_tuple(result))  # used before the next one is asked for, as the contract says
    finally:
        pool.close()
    assert got == serial


def test_blocks_and_results_larger_than_a_slot_travel_pickled() -> None:
    """A block or field that does not fit its slot is passed the usual way; bytes and order do not change."""
    blocks = _blocks(INPUT_FA, 4000)
    serial = [_as_tuple(process_block(b, *ARGS)) for b in blocks]
    slot = 3000  # smaller than most blocks: those go pickled; small blocks and small fields still use the slot
    pool = BlockPool(2, get_context("fork"), slot_bytes=slot)
    kinds = set()
    try:
        got = []
        for result in pool.map(process_block, blocks, *ARGS):
            kinds |= {type(getattr(result, name)) for name in BlockResult.BULK}
            got.append(_as_tuple(result))
    finally:
        pool.close()
    assert got == serial
    assert kinds == {bytes, memoryview}  # both ways were taken


@pytest.mark.parametrize("where", ["create", "reserve"])
def test_no_shared_memory_falls_back_to_pipes(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Where shared memory cannot be created or its pages reserved (a full /dev/shm), everything is pickled, with
    the same results."""
    import multiprocessing.heap

    def no_room(*args: object) -> None:
        raise OSError(28, "No space left on device")

    if where == "create":
        monkeypatch.setattr(multiprocessing.heap, "Arena", no_room)
    else:
        monkeypatch.setattr(blockpool.os, "posix_fallocate", no_room)
    blocks = _blocks(INPUT_FA, 8000)
    pool = BlockPool(2, get_context("fork"), slot_bytes=1 << 20)
    try:
        assert pool.slot_bytes == 0
        got = [_as_tuple(r) for r in pool.map(process_block, blocks, *ARGS)]
    finally:
        pool.close()
    assert got == [_as_tuple(process_block(b, *ARGS)) for b in blocks]


def test_slots_bound_the_blocks_in_flight() -> None:
    """At most SLOTS_PER_WORKER * workers + 1 blocks are taken from the input before the first result is used."""
    blocks = _blocks(INPUT_FA, 2000)
    taken = []

    def source():
        for b in blocks:
            taken.append(b)
            yield b

    pool = BlockPool(2, get_context("fork"), slot_bytes=1 << 16)
    try:
        results = pool.map(process_block, source(), *ARGS)
        assert len(taken) == blockpool.SLOTS_PER_WORKER * 2 + 1  # submitted before the first next()
        first = next(results)
        assert first.first_record == 1
        assert len(taken) <= blockpool.SLOTS_PER_WORKER * 2 + 1
        assert sum(1 for _ in results) == len(blocks) - 1
    finally:
        pool.close()
