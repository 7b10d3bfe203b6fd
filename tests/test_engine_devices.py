"""``cuda:N`` becomes the current device before a model is loaded, in the CLI and in every worker of the multi-GPU
pool; checked on CPU with a fake CUDA (device count, capability and ``set_device`` patched)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from conftest import DNABERT_DIR

_calls: list[int] = []  # set_device calls in this process (the test process or one pool worker)


def _fake_cuda(count: int) -> dict:
    """Attributes to patch on ``torch.cuda`` so that ``count`` GPUs look present; ``set_device`` is recorded."""
    return {
        "is_available": lambda: True,
        "device_count": lambda: count,
        "get_device_capability": lambda device=None: (9, 0),
        "set_device": lambda index: _calls.append(index),
    }


def _cpu_loader(real):
    """The real model loader, but the model goes to the CPU; records which device it was asked for and whether that
    device was already current."""
    seen: list[tuple[str, list[int]]] = []

    def load(model, device, dtype, **kwargs):
        seen.append((str(device), list(_calls)))
        return real(model, device=torch.device("cpu"), dtype=dtype, **kwargs)

    load.seen = seen  # type: ignore[attr-defined]
    return load


def test_cuda_n_becomes_the_current_device_before_the_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from virnucpro.embed import load_embedder
    from virnucpro.models import dnabert

    for name, value in _fake_cuda(4).items():
        monkeypatch.setattr(torch.cuda, name, value)
    loader = _cpu_loader(dnabert.load_dnabert)
    monkeypatch.setattr(dnabert, "load_dnabert", loader)
    _calls.clear()
    embedder = load_embedder("dna", str(DNABERT_DIR), device="cuda:2")
    assert embedder.device == torch.device("cuda:2") and embedder.transfer.asynchronous
    assert _calls == [2] and loader.seen == [("cuda:2", [2])]  # current BEFORE the weights go to the device
    _calls.clear()
    load_embedder("dna", str(DNABERT_DIR), device="cuda")  # no index: the current device stays
    load_embedder("dna", str(DNABERT_DIR), device="cpu")
    assert _calls == []


def test_plan_devices_lists_every_fake_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from virnucpro.embed_jobs import plan_devices

    for name, value in _fake_cuda(3).items():
        monkeypatch.setattr(torch.cuda, name, value)
    assert plan_devices("auto") == plan_devices("cuda") == ["cuda:0", "cuda:1", "cuda:2"]
    assert plan_devices("cuda:1,cuda:3") == ["cuda:1", "cuda:3"] and plan_devices("cuda:2") == ["cuda:2"]


def _fake_gpu_worker(index: int, device: str, item: tuple) -> dict:
    """Runs in a spawned pool worker: fake 4 GPUs there, run the pool's real job function, report what it did."""
    from virnucpro import embed, embed_jobs
    from virnucpro.models import dnabert

    if not getattr(torch.cuda, "_virnucpro_fake", False):
        for name, value in _fake_cuda(4).items():
            setattr(torch.cuda, name, value)
        torch.cuda._virnucpro_fake = True  # type: ignore[attr-defined]
        dnabert.load_dnabert = _cpu_loader(dnabert.load_dnabert)
        embed.Embedder.embed_fasta = lambda self, *a, **k: {"seconds": 0.0, "sequences": 0, "on": str(self.device)}
    result = embed_jobs.embed_job(index, device, item)
    time.sleep(0.3)  # long enough that every worker gets jobs
    return {**result, "set_device": list(_calls), "loads": list(dnabert.load_dnabert.seen), "pid": os.getpid()}


def test_each_pool_worker_makes_its_own_gpu_current(tmp_path: Path) -> None:
    from virnucpro.embed_jobs import EmbedJob, EngineOptions
    from virnucpro.workqueue import run_on_devices

    devices = ["cuda:1", "cuda:3"]
    options = EngineOptions("auto", 1, False)
    jobs = [(EmbedJob("dna", str(DNABERT_DIR), f"s{i}", "in.fa", str(tmp_path / f"s{i}.h5"), None, "float32", {"n": i}, 1), options)
            for i in range(6)]
    results = [result for _, result in run_on_devices(devices, jobs, _fake_gpu_worker)]
    assert len(results) == 6
    by_worker = {}
    for result in results:
        by_worker.setdefault(result["worker"], set()).add((result["device"], result["pid"]))
        index = int(result["device"].split(":")[1])
        assert result["set_device"] == [index]  # once per worker (the model stays loaded), its own GPU only
        assert result["loads"] == [(result["device"], [index])]
    assert sorted(by_worker) == [0, 1] and all(len(v) == 1 for v in by_worker.values())
    assert sorted(device for v in by_worker.values() for device, _ in v) == devices
