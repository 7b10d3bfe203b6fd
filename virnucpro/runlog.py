"""What a run tells people: run.log's handlers and filter, the per-stage clock, library versions for the manifest,
and the closing line that counts the calls as virus_summary.tsv does."""

from __future__ import annotations

import contextlib
import logging
import platform
import time
from pathlib import Path
from typing import Any, Iterator

from virnucpro.sample_warnings import plural

log = logging.getLogger("virnucpro.run")


class HeldRecords(logging.Handler):
    """Keeps the log records of the checks made before run.log exists, to replay them into it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def human_only(record: logging.LogRecord) -> bool:
    """run.log is for people: an embedder's machine-readable stats line (a JSON object, kept in the output of the
    ``embed-dna``/``embed-protein`` commands for scripts) stays out of it; run.log has its own line per embedding job
    ("embedded ... on DEVICE in N s")."""
    return not record.getMessage().startswith("{")


class StageClock:
    """Wall-clock duration of each stage, logged as it ends and kept for the manifest."""

    def __init__(self) -> None:
        self.durations: dict[str, float] = {}

    def record(self, stage: str, seconds: float) -> None:
        """Add time measured elsewhere (embedding jobs overlap: their summed device time per model)."""
        self.durations[stage] = round(self.durations.get(stage, 0.0) + seconds, 3)
        log.info("stage %s: %.2f s", stage, seconds)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            self.durations[stage] = round(self.durations.get(stage, 0.0) + seconds, 3)
            log.info("stage %s: %.2f s", stage, seconds)


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries that shape the numbers (recorded in manifest.json)."""
    import h5py
    import numpy
    import safetensors
    import tokenizers
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "numpy": numpy.__version__,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
    }


def utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))




def final_line(counts: dict[str, int], outdir: Path) -> str:
    """The last line of a run: how many reads were called virus / others / NA, as virus_summary.tsv counts them."""
    reads = counts.get("reads", 0)

    def part(key: str, label: str, note: str = "") -> str:
        n = counts.get(key, 0)
        share = f"{100.0 * n / reads:.1f}%" if reads else ""
        inside = "; ".join(x for x in (share, note) if x)
        return f"{n} {label}" + (f" ({inside})" if inside else "")

    return (
        f"done: {plural(reads, 'read')}: {part('reads_virus', 'virus')}, {part('reads_others', 'others')}, "
        f"{part('reads_na', 'NA', 'nothing or too little scored')}{_warned(counts)} → {outdir}"
    )


def _warned(counts: dict[str, Any]) -> str:
    n = len(counts.get("warnings", ()))
    return f"; {plural(n, 'warning')} (report.html)" if n else ""


