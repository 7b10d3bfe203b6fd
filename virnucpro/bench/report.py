"""The JSON report's common parts: hardware, process memory and CPU time, one line per stage, and the writer.

Every benchmark script of the project writes its JSON through :func:`emit_report`, so all reports are written the
same way (atomically to a file, else to stdout).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from virnucpro.atomic import atomic_text


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (host memory, whatever the device)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def hardware(device: torch.device) -> dict[str, Any]:
    """What a reader needs to compare numbers across machines."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_capability=f"{props.major}.{props.minor}", gpu_memory_bytes=int(props.total_memory),
                    cuda=torch.version.cuda)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def summary_line(run: dict[str, Any]) -> str:
    """One stderr line per stage run."""
    if run["stage"] == "prepare":
        return (f"prepare {run['input']} chunk {run['chunk_length']}: {run['reads_per_s_per_core']:,.0f} reads/s/core, "
                f"{run['frames_per_window']:.2f} frames/window")
    if not run.get("sequences"):
        return f"{run['stage']} {run['input']}: no frames"
    if run["mode"] == "host-only":
        return (f"{run['stage']} {run['input']} host-only ({run['workers']} workers, dim {run['dim']}): "
                f"{run['host_seq_per_s']:,.0f} seq/s, peak RSS {run['peak_rss_bytes'] / 2**20:,.0f} MiB")
    return (f"{run['stage']} {run['input']} ({run['model']}, {run['precision']}, {run['workers']} workers): "
            f"forward {run['forward_tokens_per_s']:,.0f} tokens/s, end to end {run['e2e_seq_per_s']:,.1f} seq/s "
            f"({run['e2e_tokens_per_s']:,.0f} tokens/s), padding efficiency {run['padding_efficiency']:.2f}, "
            f"MFU {run['mfu']:.2%}")


def logged(run: dict[str, Any]) -> dict[str, Any]:
    """Print the stage's one-line summary to stderr and return it unchanged."""
    print(f"benchmark: {summary_line(run)}", file=sys.stderr, flush=True)
    return run


def emit_report(report: dict[str, Any], output: Path | None) -> None:
    """Every benchmark's JSON report: to ``output`` (atomically) when given, else to stdout."""
    text = json.dumps(report, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    with atomic_text(output) as out:
        out.write(text)



#: How far the named phases of a :class:`StageClock` may fall short of the whole: the bookkeeping between them
#: (building dicts, freeing token lists) is not in any phase. Relative to the whole, plus an absolute floor.
STAGE_SLACK = (0.02, 0.05)


class StageClock:
    """Wall seconds of consecutive named phases and of the whole, so a report's stage times add up.

    Every phase is timed by the same clock as the whole, and phases never overlap (they run one after the other in
    the calling thread), so ``sum(stage_seconds) <= seconds <= sum + slack`` (:data:`STAGE_SLACK`) holds by
    construction, and a reader can see where the time of a benchmark went.
    """

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.parts: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as (part of) phase ``name``; a name used again accumulates."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.parts[name] = self.parts.get(name, 0.0) + time.perf_counter() - start

    def report(self) -> dict[str, Any]:
        """``seconds`` (the whole so far), ``stage_seconds`` (each phase) and ``unaccounted_seconds`` (the rest)."""
        whole = time.perf_counter() - self.start
        return {"seconds": round(whole, 4), "stage_seconds": {k: round(v, 4) for k, v in self.parts.items()},
                "unaccounted_seconds": round(whole - sum(self.parts.values()), 4)}
