"""Whole-process speed of ``virnucpro prepare`` against the original's per-codon approach, in one run; JSON report.

Each measurement starts a fresh process exactly as a user would (``virnucpro prepare ...``, and
``python benchmarks/original_prepare.py ...`` for the baseline: Biopython parsing, the original chunking rule and a
dict lookup per codon), times it (wall clock, and the CPU seconds of the process and its children), and checks that
both wrote the same frames byte for byte. The commands compared are run in turn in each of ``--repeats`` repeats, so
they see the machine in the same state; the fastest run of each, the medians and every run are reported. Cases
(``--reads`` reads each, default 60,000):

* synthetic 500 bp reads, chunk 500 (random DNA carrying one stop-free frame: ``virnucpro.bench``'s generator);
* real-like 500 bp reads, chunk 300, and real-like 150 bp reads, chunk 300: fragments sampled at random positions
  of the sequences in ``/work/shared/realdata`` (read in place; the sampled FASTA is written to a temp folder;
  ``--realdata`` may name another such folder, or one FASTA file to sample from);
* workers: ``--big-reads`` real-like 500 bp reads, chunk 500, with ``--workers 1`` and ``--workers 2``, and a
  control: two independent ``--workers 1`` processes started together, each on half of the reads. That is the same
  work split in two with no coordination at all, so its speed-up over one process (``ideal_2_vs_1``) is the most any
  2-way parallel prepare can get on this machine at that moment (2.0 on two free cores; far less on a VM whose two
  vCPUs do not run at full speed together). ``efficiency`` = ``speedup_2_vs_1`` / ``ideal_2_vs_1``. The three are
  run back to back in each repeat, so they see the machine in the same state; best and median over the repeats are
  reported.

Usage::

    python benchmarks/prepare_speed.py --output prepare_speed.json          # ~2-4 minutes on 2 cores
    python benchmarks/prepare_speed.py --reads 300 --big-reads 600          # tiny: checks the harness only

Every timed process sees what an installed package has: Python's bytecode cache (``pip install`` and the container
compile it; ``PYTHONPYCACHEPREFIX`` points the timed processes at a cache in the work folder, so a
``PYTHONDONTWRITEBYTECODE`` environment or an editable checkout does not make each run recompile the package's
source, a cost no installed copy pays), after one untimed warm-up run of each command (which also fills that cache
and the page cache for both sides). Each timed run writes to a folder that does not exist yet, as a user's run does
(removed untimed before it), so neither side pays for deleting the previous run's files.

Numbers are as good as the machine is quiet: on a shared machine compare the ratio (both sides measured in the same
run) and the CPU seconds rather than the absolute rates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
try:
    import virnucpro  # noqa: F401
except ModuleNotFoundError:  # a checkout that is not installed: time its package, here and in the timed processes
    sys.path.insert(0, str(HERE.parent))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
ORIGINAL = HERE / "original_prepare.py"
REALDATA = Path("/work/shared/realdata")
REAL_FILES = ("virus_3kb.fa", "host_3kb.fa", "gut_metagenome_contigs.fa")
CASES = ("synthetic-500bp", "real-like-500bp", "real-like-150bp", "workers")


def virnucpro_command() -> list[str]:
    """The console script next to this interpreter (as a user runs it), else ``python -m virnucpro``."""
    script = Path(sys.executable).with_name("virnucpro")
    return [str(script)] if script.exists() else [sys.executable, "-m", "virnucpro"]


def write_real_like(path: Path, n_reads: int, length: int, realdata: Path, seed: int) -> Path:
    """``n_reads`` fragments of ``length`` bp taken at random positions of real sequences (weighted by length)."""
    from virnucpro.fasta import read_fasta, write_record

    files = [realdata] if realdata.is_file() else [realdata / name for name in REAL_FILES]
    sources = [(r.id, r.sequence) for path in files for r in read_fasta(path) if len(r.sequence) >= length]
    if not sources:
        raise SystemExit(f"no sequence of {length} bp or more under {realdata}")
    rng = np.random.default_rng(seed + length)
    weights = np.array([len(s) - length + 1 for _, s in sources], dtype=np.float64)
    picks = rng.choice(len(sources), size=n_reads, p=weights / weights.sum())
    with open(path, "w", encoding="ascii") as out:
        for i, k in enumerate(picks.tolist()):
            source_id, sequence = sources[k]
            start = int(rng.integers(0, len(sequence) - length + 1))
            write_record(out, f"rl{length}_{i} {source_id}:{start}", sequence[start : start + length], 60)
    return path


#: Environment of the timed processes (see the module docstring); set by :func:`use_bytecode_cache`.
TIMED_ENV: dict[str, str] | None = None


def use_bytecode_cache(folder: Path) -> None:
    """Give the timed processes a bytecode cache in ``folder``, as an installed package has one."""
    global TIMED_ENV
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(folder)
    TIMED_ENV = env


def fresh(outdir: Path) -> None:
    """Remove ``outdir`` (untimed) so the next run writes to a new folder."""
    shutil.rmtree(outdir, ignore_errors=True)


def output_folder(command: list[str]) -> Path:
    """The output folder of a prepare command (``--outdir``) or of the original script (its last argument)."""
    return Path(command[command.index("--outdir") + 1] if "--outdir" in command else command[-1])


def timed(command: list[str]) -> dict[str, float]:
    """Run ``command`` to completion into a fresh output folder; wall seconds and CPU seconds (user + system,
    children included)."""
    fresh(output_folder(command))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=TIMED_ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}


def timed_together(commands: list[list[str]]) -> dict[str, float]:
    """Start ``commands`` at once; wall seconds until the last one ends."""
    for command in commands:
        fresh(output_folder(command))
    start = time.perf_counter()
    running = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=TIMED_ENV) for c in commands]
    for command, process in zip(commands, running):
        _, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {err.strip()[-2000:]}")
    return {"wall_s": round(time.perf_counter() - start, 3)}


def prepare_command(fasta: Path, chunk: int, outdir: Path, workers: int | None) -> list[str]:
    command = [*virnucpro_command(), "prepare", str(fasta), "--outdir", str(outdir), "--chunk-length", str(chunk), "-q"]
    return command + ["--workers", str(workers)] if workers is not None else command


def split_in_halves(fasta: Path) -> tuple[Path, Path]:
    """The records of ``fasta`` in two files of about equal size (cut at the header nearest the middle)."""
    data = fasta.read_bytes()
    cut = data.find(b"\n>", len(data) // 2) + 1
    halves = fasta.with_suffix(".half1.fa"), fasta.with_suffix(".half2.fa")
    halves[0].write_bytes(data[:cut])
    halves[1].write_bytes(data[cut:])
    return halves


def same_frames(virnucpro_dir: Path, original_dir: Path) -> bool:
    return (virnucpro_dir / "shard_0001.nuc.fa").read_bytes() == (original_dir / "identified_nucleotide.fa").read_bytes() and (
        virnucpro_dir / "shard_0001.prot.fa"
    ).read_bytes() == (original_dir / "identified_protein.faa").read_bytes()


def rate(reads: int, seconds: float) -> float:
    return round(reads / seconds, 1) if seconds > 0 else 0.0


def compare_case(name: str, fasta: Path, chunk: int, reads: int, work: Path, repeats: int) -> dict:
    """One input: the original, virnucpro with its default workers and virnucpro with one worker, run in turn in each
    repeat (so the three see the machine in the same state); the fastest run of each, and the medians."""
    original_dir, default_dir, single_dir = work / f"{name}-original", work / f"{name}-virnucpro", work / f"{name}-w1"
    commands = {
        "original": [sys.executable, str(ORIGINAL), str(fasta), str(chunk), str(original_dir)],
        "virnucpro": prepare_command(fasta, chunk, default_dir, None),
        "virnucpro_1_worker": prepare_command(fasta, chunk, single_dir, 1),
    }
    runs: dict[str, list[dict[str, float]]] = {key: [] for key in commands}
    for command in commands.values():  # warm-up, untimed
        timed(command)
    for _ in range(repeats):
        for key, command in commands.items():
            runs[key].append(timed(command))
    best = {key: min(v, key=lambda r: r["wall_s"]) for key, v in runs.items()}
    median = {key: {m: float(np.median([r[m] for r in v])) for m in ("wall_s", "cpu_s")} for key, v in runs.items()}
    original, default, single = best["original"], best["virnucpro"], best["virnucpro_1_worker"]
    manifest = json.loads((default_dir / "manifest.json").read_text())
    return {
        "case": name,
        "chunk_length": chunk,
        "reads": reads,
        "windows": manifest["counts"]["windows"],
        "frames": manifest["counts"]["frames"],
        "identical_to_original": same_frames(default_dir, original_dir) and same_frames(single_dir, original_dir),
        "original": {**original, "reads_per_s": rate(reads, original["wall_s"])},
        "virnucpro": {**default, "reads_per_s": rate(reads, default["wall_s"]), "workers": "default"},
        "virnucpro_1_worker": {**single, "reads_per_s": rate(reads, single["wall_s"])},
        "speedup_vs_original": round(original["wall_s"] / default["wall_s"], 2),
        "speedup_vs_original_1_worker": round(original["wall_s"] / single["wall_s"], 2),
        "cpu_speedup_vs_original_1_worker": round(original["cpu_s"] / single["cpu_s"], 2) if single["cpu_s"] else None,
        "medians": {
            "wall_s": {key: round(m["wall_s"], 3) for key, m in median.items()},
            "speedup_vs_original": round(median["original"]["wall_s"] / median["virnucpro"]["wall_s"], 2),
            "speedup_vs_original_1_worker": round(median["original"]["wall_s"] / median["virnucpro_1_worker"]["wall_s"], 2),
            "cpu_speedup_vs_original_1_worker": round(median["original"]["cpu_s"] / median["virnucpro_1_worker"]["cpu_s"], 2)
            if median["virnucpro_1_worker"]["cpu_s"]
            else None,
        },
        "all_runs_wall_s": {key: [r["wall_s"] for r in v] for key, v in runs.items()},
    }


def workers_case(fasta: Path, chunk: int, reads: int, work: Path, repeats: int) -> dict:
    """1 vs 2 workers, and the independent-halves control, back to back in each repeat."""
    halves = split_in_halves(fasta)
    runs: dict[str, list[float]] = {"one": [], "two": [], "halves": []}
    timed(prepare_command(fasta, chunk, work / "big-w1", 1))  # warm-up, untimed
    for _ in range(repeats):
        runs["one"].append(timed(prepare_command(fasta, chunk, work / "big-w1", 1))["wall_s"])
        runs["two"].append(timed(prepare_command(fasta, chunk, work / "big-w2", 2))["wall_s"])
        halves_run = [prepare_command(h, chunk, work / f"big-h{i}", 1) for i, h in enumerate(halves)]
        runs["halves"].append(timed_together(halves_run)["wall_s"])
    best = {k: min(v) for k, v in runs.items()}
    median = {k: float(np.median(v)) for k, v in runs.items()}
    identical = all(
        (work / "big-w1" / name).read_bytes() == (work / "big-w2" / name).read_bytes()
        for name in ("shard_0001.nuc.fa", "shard_0001.prot.fa", "reads.tsv")
    )
    return {
        "case": "workers",
        "input": f"real-like 500 bp x {reads}",
        "chunk_length": chunk,
        "reads": reads,
        "input_mb": round(fasta.stat().st_size / 1e6, 1),
        "one_worker": {"wall_s": best["one"], "reads_per_s": rate(reads, best["one"])},
        "two_workers": {"wall_s": best["two"], "reads_per_s": rate(reads, best["two"])},
        "speedup_2_vs_1": round(best["one"] / best["two"], 2),
        "ideal_2_vs_1": round(best["one"] / best["halves"], 2),
        "efficiency": round(best["halves"] / best["two"], 2),
        "medians": {
            "speedup_2_vs_1": round(median["one"] / median["two"], 2),
            "ideal_2_vs_1": round(median["one"] / median["halves"], 2),
            "efficiency": round(median["halves"] / median["two"], 2),
        },
        "all_runs_wall_s": runs,
        "identical_outputs": identical,
        "halves_hold_every_read": sum(json.loads((work / f"big-h{i}" / "manifest.json").read_text())["counts"]["reads"] for i in (0, 1))
        == reads,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=60_000, help="reads per comparison case (default 60000)")
    parser.add_argument("--big-reads", type=int, default=200_000, help="reads of the 1-vs-2-workers case (default 200000)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each command, interleaved; fastest and median reported (default 1)")
    parser.add_argument("--realdata", type=Path, default=REALDATA, help=f"folder of real sequences, or one FASTA file (default {REALDATA})")
    parser.add_argument("--workdir", type=Path, default=None, help="keep inputs and outputs here (default: a temp folder)")
    parser.add_argument("--output", type=Path, default=None, help="JSON report (default: stdout)")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES), help="cases to run (default: all)")
    args = parser.parse_args(argv)

    from virnucpro import __version__
    from virnucpro.bench import write_synthetic_fasta

    temp = None if args.workdir else tempfile.mkdtemp(prefix="prepare-speed-")
    work = Path(args.workdir or temp)
    work.mkdir(parents=True, exist_ok=True)
    use_bytecode_cache(work / "pycache")
    try:
        makers = {
            "synthetic-500bp": lambda: (write_synthetic_fasta(work / "synthetic500.fa", args.reads, 500, seed=11), 500),
            "real-like-500bp": lambda: (write_real_like(work / "real500.fa", args.reads, 500, args.realdata, seed=12), 300),
            "real-like-150bp": lambda: (write_real_like(work / "real150.fa", args.reads, 150, args.realdata, seed=13), 300),
        }
        cases = [
            compare_case(name, *makers[name](), args.reads, work, args.repeats) for name in CASES if name in args.cases and name in makers
        ]
        if "workers" in args.cases:
            big = write_real_like(work / "big500.fa", args.big_reads, 500, args.realdata, seed=14)
            cases.append(workers_case(big, 500, args.big_reads, work, args.repeats))
    finally:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)
    report = {
        "benchmark": "prepare_speed",
        "virnucpro_version": __version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cores": len(os.sched_getaffinity(0)),
        "load_average_at_end": os.getloadavg(),
        "reads": args.reads,
        "repeats": args.repeats,
        "timed_runs": "after one untimed warm-up; bytecode cached (PYTHONPYCACHEPREFIX); each into a new output folder",
        "cases": cases,
    }
    text = json.dumps(report, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
