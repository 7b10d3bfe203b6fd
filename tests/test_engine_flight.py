"""The device loop's scheduling on CPU: several batches in flight (a transfer whose results arrive late), too-large
sequences among them, OOM recognition and back-off memory, the device cache emptied after the failed batch is
freed, and no host syncs in the loop."""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from conftest import DNABERT_DIR, expected, golden
from virnucpro.embed import load_embedder
from virnucpro.engine.backoff import TokenBudget, is_oom
from virnucpro.engine.batching import TokenChunk, plan_batches
from virnucpro.engine.flight import DeviceLoop, HostBatch, PreparedChunk
from virnucpro.engine.transfer import SyncTransfer
from virnucpro.h5io import MatrixReader


class _Table:
    """ids, rows and validity flags of an embedding file."""

    def __init__(self, path: Path) -> None:
        with MatrixReader(path) as reader:
            self.ids, self.valid, self.matrix = reader.ids, reader.valid, reader.rows(slice(None))


class _Late:
    def __init__(self, owner: "LateTransfer", values: torch.Tensor) -> None:
        self.owner, self.values = owner, values

    def ready(self) -> bool:
        return False  # never before the loop has to wait: the queue fills up to in_flight

    def wait(self) -> np.ndarray:
        self.owner.outstanding -= 1
        return self.values.numpy()


class LateTransfer(SyncTransfer):
    """Asynchronous on CPU: results arrive only when waited for, as on a busy GPU; counts batches in flight."""

    asynchronous = True

    def __init__(self) -> None:
        self.outstanding = 0
        self.most = 0

    def send(self, means: torch.Tensor, keep: tuple) -> _Late:
        self.outstanding += 1
        self.most = max(self.most, self.outstanding)
        return _Late(self, means)


def _subset(tmp_path: Path, n: int) -> tuple[Path, list[str]]:
    lines = (expected(300) / "identified_nucleotide.fa").read_text().splitlines()
    records = [i for i, line in enumerate(lines) if line.startswith(">")][: n + 1]
    fa = tmp_path / "sub.fa"
    fa.write_text("\n".join(lines[: records[n]]) + "\n")
    return fa, [lines[i][1:].split()[0] for i in records[:n]]


@pytest.fixture(scope="module")
def dna():
    return load_embedder("dna", str(DNABERT_DIR), device="cpu", precision="fp32", workers=1, chunk_size=8)


def _run(embedder, fa: Path, out: Path, in_flight: int, hook, tokens: int = 300) -> tuple[dict, LateTransfer | None]:
    embedder.in_flight = in_flight
    embedder.transfer = LateTransfer() if in_flight > 1 else SyncTransfer()
    embedder.budget = TokenBudget()
    embedder.fault_hook = hook
    stats = embedder.embed_fasta(fa, out, tokens_per_batch=tokens, progress=False)
    return stats, embedder.transfer if in_flight > 1 else None


def _cheap_step(embedder, fa: Path, monkeypatch) -> np.ndarray:
    """Give ``embedder`` a pooled random-embedding step (fast; each row depends on its own tokens only) and return
    the rows it must produce for ``fa``."""
    tokens = embedder.read_and_tokenize(fa)[1]
    table = torch.randn(max(embedder.encoder.pad_id, *(int(t.max()) for t in tokens)) + 1, embedder.dim)
    monkeypatch.setattr(embedder, "step", _pool_step(table))
    return np.stack([table[torch.from_numpy(t.astype(np.int64))].mean(0).numpy() for t in tokens])


def test_too_large_sequence_at_every_position_with_batches_in_flight(dna, tmp_path: Path, monkeypatch) -> None:
    """30 reads in chunks of 8, 3-4 batches per chunk, 3 in flight: whichever read cannot fit, it alone is recorded as
    not embedded and every other row equals the one-at-a-time run. (A cheap pooling step stands in for the model:
    what is tested is the loop and the sink; the model's own values are checked in the next test.)"""
    fa, ids = _subset(tmp_path, 30)
    want = _cheap_step(dna, fa, monkeypatch)
    for target in range(len(ids)):
        def too_large(rows: np.ndarray, lengths: np.ndarray) -> None:
            if target in rows:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

        outputs = []
        for in_flight in (1, 3):
            out = tmp_path / f"{target}.{in_flight}.h5"
            stats, late = _run(dna, fa, out, in_flight, too_large, tokens=30)
            assert stats["too_large"] == 1 and stats["sequences"] == 30 and stats["batches"] >= 10
            if late is not None:
                assert late.most == 3 and late.outstanding == 0  # really 3 batches queued, all landed
            outputs.append(_Table(out))
        one, many = outputs
        assert one.ids == many.ids == ids
        assert np.flatnonzero(~many.valid).tolist() == [target] and np.array_equal(one.valid, many.valid)
        assert not many.matrix[target].any()
        keep = np.arange(30) != target
        assert np.abs(many.matrix - one.matrix).max() <= 1e-6
        assert np.abs(many.matrix[keep] - want[keep]).max() <= 1e-5


def test_in_flight_results_land_in_launch_order_with_oom_halving(dna, tmp_path: Path) -> None:
    fa, ids = _subset(tmp_path, 30)

    def oom_above_two(rows: np.ndarray, lengths: np.ndarray) -> None:
        if len(rows) > 2:
            raise torch.OutOfMemoryError("simulated")

    stats, late = _run(dna, fa, tmp_path / "o.h5", 3, oom_above_two, tokens=600)
    table = _Table(tmp_path / "o.h5")
    assert late is not None and late.most == 3 and stats["oom_retries"] > 0 and table.valid.all()
    assert table.ids == ids and np.abs(table.matrix - golden("dnabert", 300)[1][:30]).max() <= 1e-4


OOM_MESSAGES = [  # as PyTorch and the CUDA libraries word them (PyTorch and user issue threads)
    "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity; 75.10 GiB already allocated)",
    "CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported at some other API call, so the "
    "stacktrace below might be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1",
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "CUDA error: out of memorySearch for `cudaErrorMemoryAllocation' in https://docs.nvidia.com/cuda/cuda-runtime-api",
    "CUDA driver error: out of memory",
    "HIP out of memory. Tried to allocate 20.00 MiB (GPU 0; 15.98 GiB total capacity)",
    "[enforce fail at alloc_cpu.cpp:114] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate "
    "137438953472 bytes. Error code 12 (Cannot allocate memory)",
]
OTHER_ERRORS = [
    "CUDA error: an illegal memory access was encountered",
    "CUDA error: device-side assert triggered",
    "CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasSgemm( handle, opa, opb, m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc)`",
    "CUDA error: CUBLAS_STATUS_NOT_SUPPORTED when calling `cublasGemmEx(...)`",
    "mat1 and mat2 shapes cannot be multiplied (4x64 and 32x64)",
    "Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!",
]


def test_is_oom_recognises_the_real_messages_and_nothing_else() -> None:
    assert is_oom(torch.OutOfMemoryError("anything"))
    for text in OOM_MESSAGES:
        assert is_oom(RuntimeError(text)) and is_oom(torch.AcceleratorError(text)), text
    for text in OTHER_ERRORS:
        assert not is_oom(RuntimeError(text)) and not is_oom(torch.AcceleratorError(text)), text
    assert not is_oom(ValueError(OOM_MESSAGES[0]))  # only the error types PyTorch raises for it


def test_oom_reported_as_runtime_error_backs_off_other_errors_end_the_run(dna, tmp_path: Path) -> None:
    fa, ids = _subset(tmp_path, 20)

    def cublas_workspace(rows: np.ndarray, lengths: np.ndarray) -> None:
        if len(rows) > 1:
            raise RuntimeError(OOM_MESSAGES[2])

    stats, _ = _run(dna, fa, tmp_path / "o.h5", 1, cublas_workspace)
    assert stats["oom_retries"] > 0 and stats["too_large"] == 0
    table = _Table(tmp_path / "o.h5")
    assert table.valid.all() and np.abs(table.matrix - golden("dnabert", 300)[1][:20]).max() <= 1e-4

    def illegal_access(rows: np.ndarray, lengths: np.ndarray) -> None:
        raise RuntimeError(OTHER_ERRORS[0])

    with pytest.raises(RuntimeError, match="illegal memory access"):
        _run(dna, fa, tmp_path / "x.h5", 1, illegal_access)
    assert not (tmp_path / "x.h5").exists()


def test_token_budget_keeps_the_largest_size_that_worked() -> None:
    budget = TokenBudget()
    assert budget.ceiling(100) is None
    budget.failed(100, 1000)
    assert budget.ceiling(100) == 500  # nothing has run yet: half the failed size
    budget.worked(100, 400)
    budget.worked(100, 450)
    budget.worked(100, 2000)  # above what failed: not evidence of a larger budget
    assert budget.ceiling(100) == 450 and budget.ceiling(127) == 450 and budget.ceiling(64) == 450
    assert budget.ceiling(300) == 450  # longer sequences need at least as much memory per token
    assert budget.ceiling(50) is None  # shorter ones: no evidence
    budget.failed(100, 450)  # the same size failed later (fragmentation): learn the smaller one
    assert budget.ceiling(100) == 225
    lengths = np.array([100, 90, 80, 70, 60, 50])
    parts = budget.split(np.arange(6), lengths)
    assert [p.tolist() for p in parts] == [[0, 1], [2, 3], [4, 5]]
    assert all(lengths[p].max() * len(p) <= 225 for p in parts)
    assert [p.tolist() for p in budget.split(np.array([0]), lengths)] == [[0]]


def test_oom_budget_is_remembered_for_the_rest_of_the_run(dna, tmp_path: Path, monkeypatch) -> None:
    """Memory holds 300 padded tokens: the first batch teaches it; later batches, in later chunks and in the next
    file, are split before launch instead of running out of memory again."""
    fa, ids = _subset(tmp_path, 40)
    want = _cheap_step(dna, fa, monkeypatch)
    failures: list[int] = []
    ran: list[int] = []

    def memory_of_300(rows: np.ndarray, lengths: np.ndarray) -> None:
        padded = int(lengths.max()) * len(rows)
        if padded > 300:
            failures.append(padded)
            raise torch.OutOfMemoryError("simulated")
        ran.append(padded)

    stats, _ = _run(dna, fa, tmp_path / "a.h5", 1, memory_of_300, tokens=2000)
    table = _Table(tmp_path / "a.h5")
    assert table.valid.all() and np.abs(table.matrix - want).max() <= 1e-5
    lengths = np.array([len(t) for t in dna.read_and_tokenize(fa)[1]])
    too_big = [b for c in range(0, 40, 8) for b in plan_batches(lengths[c : c + 8], 2000) if lengths[c:c+8][b].max() * len(b) > 300]
    assert len(too_big) == 5 and len(failures) <= 2, failures  # without memory each chunk's batch fails, and again
    longest = int(lengths.max())
    ceiling = dna.budget.ceiling(longest)
    assert ceiling is not None and ceiling <= 300 and ceiling == max(ran)
    failures.clear()
    dna.fault_hook = memory_of_300
    dna.embed_fasta(fa, tmp_path / "b.h5", tokens_per_batch=2000, progress=False)  # same embedder: same budget
    assert failures == []


class _NoHostSync(TorchDispatchMode):
    """Fails on any op that reads a device value on the host (a sync on CUDA; CPU tensors dispatch the same ops)."""

    SYNCS = {"aten::_local_scalar_dense", "aten::is_nonzero", "aten::item", "aten::nonzero"}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func._schema.name in self.SYNCS:
            raise AssertionError(f"host sync in the device loop: {func._schema.name}")
        return func(*args, **(kwargs or {}))


def _pool_step(table: torch.Tensor):
    def step(ids: torch.Tensor, mask: torch.Tensor, padded: bool = True) -> torch.Tensor:
        weights = mask.to(torch.float32)
        return (table[ids] * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1.0)
    return step


def test_device_loop_makes_no_host_sync(dna) -> None:
    rng = np.random.default_rng(0)
    tokens = [rng.integers(0, 50, int(n)).astype(np.int32) for n in rng.integers(3, 60, 64)]
    chunks = [TokenChunk.of(i * 16, [f"s{j}" for j in range(i * 16, i * 16 + 16)], tokens[i * 16 : (i + 1) * 16]) for i in range(4)]
    prepared = [PreparedChunk(c, [HostBatch(r) for r in plan_batches(c.lengths, 200)]) for c in chunks]
    table = torch.randn(50, 8)

    def oom_sometimes(rows: np.ndarray, lengths: np.ndarray) -> None:
        if len(rows) > 3:
            raise torch.OutOfMemoryError("simulated")

    landed = []
    loop = DeviceLoop(_pool_step(table), torch.device("cpu"), 0, in_flight=3, transfer=LateTransfer(), fault_hook=oom_sometimes)
    with _NoHostSync():
        for chunk, rows, values in loop.run(prepared):
            landed.append((chunk.start, rows, values))
    assert sorted(start + int(r) for start, rows, _ in landed for r in rows) == list(range(64))
    assert loop.stats["oom_retries"] > 0 and loop.transfer.most == 3
    for start, rows, values in landed:
        for row, value in zip(rows, values):
            assert np.allclose(value, table[torch.from_numpy(tokens[start + row].astype(np.int64))].mean(0).numpy(), atol=1e-6)

    def syncing(ids: torch.Tensor, mask: torch.Tensor, padded: bool = True) -> torch.Tensor:  # the guard itself catches a sync
        return _pool_step(table)(ids, mask) * (1.0 if mask.any().item() else 0.0)

    with _NoHostSync(), pytest.raises(AssertionError, match="host sync"):
        list(DeviceLoop(syncing, torch.device("cpu"), 0).run(prepared[:1]))


class _Recorder(SyncTransfer):
    def __init__(self, refs: list[weakref.ref]) -> None:
        self.refs = refs
        self.alive_at_empty_cache: list[int] = []

    def empty_cache(self) -> None:
        self.alive_at_empty_cache.append(sum(ref() is not None for ref in self.refs))


def test_empty_cache_runs_after_the_failed_batch_is_released() -> None:
    """The failed forward's tensors (inputs and activations, held by the exception's traceback) are gone when the
    device cache is emptied, so the cache can actually give their memory back."""
    refs: list[weakref.ref] = []
    table = torch.randn(50, 8)

    def step(ids: torch.Tensor, mask: torch.Tensor, padded: bool = True) -> torch.Tensor:
        hidden = table[ids] * 2.0  # an activation of the failed forward
        if len(ids) > 1:
            refs.extend([weakref.ref(ids), weakref.ref(mask), weakref.ref(hidden)])
            raise torch.OutOfMemoryError("simulated, in the middle of the forward")
        return hidden.mean(1)

    tokens = [np.arange(1, n + 1, dtype=np.int32) for n in (5, 4, 3, 2)]
    chunk = TokenChunk.of(0, ["a", "b", "c", "d"], tokens)
    recorder = _Recorder(refs)
    prepared = [PreparedChunk(chunk, [HostBatch(np.arange(4))])]
    loop = DeviceLoop(step, torch.device("cpu"), 0, transfer=recorder)
    out = list(loop.run(prepared))
    assert sorted(int(r) for _, rows, _ in out for r in rows) == [0, 1, 2, 3]
    assert len(recorder.alive_at_empty_cache) == 3 == loop.stats["oom_retries"]  # 4 → 2 + 2 → 1 + 1 + 1 + 1
    assert recorder.alive_at_empty_cache == [0, 0, 0]


def test_model_is_told_from_the_host_whether_a_batch_is_padded(tmp_path: Path) -> None:
    """The engine passes ``padded=False`` for batches whose rows all have one length (known from the host lengths),
    so the model skips its mask and ALiBi bias without inspecting the device mask; embeddings are unchanged."""
    fasta = tmp_path / "mixed.fa"
    fasta.write_text(">a\n" + "ACGT" * 30 + "\n>b\n" + "ACGT" * 30 + "\n>c\n" + "ACGTTG" * 35 + "\n>d\n" + "ACGTTG" * 35 + "\n")
    embedder = load_embedder("dna", str(DNABERT_DIR), device="cpu", chunk_size=8)
    module = embedder.encoder.module
    seen: list[tuple[bool, int]] = []
    real_forward = module.forward

    def recording(ids: torch.Tensor, mask: torch.Tensor, padded: bool = True) -> torch.Tensor:
        seen.append((padded, int((~mask).sum())))
        return real_forward(ids, mask, padded=padded)

    module.forward = recording  # type: ignore[method-assign]
    embedder.embed_fasta(fasta, tmp_path / "pairs.h5", tokens_per_batch=60, progress=False)  # batches of equal reads
    embedder.embed_fasta(fasta, tmp_path / "one.h5", tokens_per_batch=100_000, progress=False)  # one mixed batch
    assert any(not padded for padded, _ in seen) and any(padded for padded, _ in seen)
    assert all(padded == (pads > 0) for padded, pads in seen)  # padded exactly when the mask has padding
    pairs, one = _Table(tmp_path / "pairs.h5"), _Table(tmp_path / "one.h5")
    assert pairs.ids == one.ids
    np.testing.assert_allclose(pairs.matrix, one.matrix, rtol=0, atol=1e-5)
