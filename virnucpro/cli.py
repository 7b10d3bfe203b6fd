"""The one command line: argument parsing only; every subcommand calls one stage function.

Errors derived from :class:`~virnucpro.errors.VirNucProError` become one line on stderr and their exit status, so bad
input never ends in a traceback. The Nextflow modules call these subcommands, and the pipeline's static tests parse
their command lines with :func:`build_parser`, so option names here are a contract.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Callable, Sequence

from virnucpro import __version__
from virnucpro.errors import Interrupted, VirNucProError

log = logging.getLogger("virnucpro")

CHUNK_LENGTHS = (300, 500)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEFAULT_DNABERT = "zhihan1996/DNABERT-S"
DEFAULT_ESM = "esm2_t36_3B_UR50D"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings and errors only")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="stderr log level")


def _device_precision(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (auto: CUDA when available)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help="auto: bf16 on CUDA >= 8.0, else fp32")


def _embed_options(p: argparse.ArgumentParser, default_model: str) -> None:
    p.add_argument("--model", default=default_model, help=f"local model path or hub name (default {default_model})")
    p.add_argument("--input", required=True, type=Path, help="FASTA of sequences to embed (a prepare shard)")
    p.add_argument("--output", required=True, type=Path, help="HDF5 file to write (ids + embeddings)")
    p.add_argument("--tokens-per-batch", type=int, default=None, help="padded tokens per forward pass (default: per model/device)")
    p.add_argument("--store-dtype", default="float32", choices=["float32", "float16"], help="dtype stored in HDF5")
    _device_precision(p)


def _shard_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--shards", type=int, default=None, help="number of token-balanced shards")
    group.add_argument("--tokens-per-shard", type=int, default=None, help="start a new shard after this many tokens")


def build_parser() -> argparse.ArgumentParser:
    """The full parser; tests and the pipeline's contract checks use it to validate command lines."""
    parser = argparse.ArgumentParser(
        prog="virnucpro",
        description="Identify viral sequences with VirNucPro (DNABERT-S + ESM-2 embeddings, MLP classifier).",
    )
    parser.add_argument("--version", action="version", version=f"virnucpro {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("prepare", help="cut windows, translate six frames, write token-balanced shards + reads.tsv")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT.fa", help="FASTA files (plain or gzip)")
    p.add_argument("--outdir", required=True, type=Path)
    p.add_argument("--chunk-length", type=int, default=500, choices=CHUNK_LENGTHS)
    _shard_options(p)
    p.add_argument("--prefix", default="shard", help="shard file name prefix (default: shard)")
    p.add_argument("--write-windows", action="store_true", help="also write windows.fa as the original chunk file")
    _common(p)

    p = sub.add_parser("embed-dna", help="DNABERT-S mean embeddings of nucleotide frames → HDF5")
    _embed_options(p, DEFAULT_DNABERT)
    _common(p)

    p = sub.add_parser("embed-protein", help="ESM-2 mean embeddings (last layer) of protein frames → HDF5")
    _embed_options(p, DEFAULT_ESM)
    _common(p)

    p = sub.add_parser("merge", help="join DNABERT-S and ESM-2 embeddings by id → features HDF5")
    p.add_argument("--dna", required=True, type=Path)
    p.add_argument("--protein", required=True, type=Path)
    p.add_argument("--output", required=True, type=Path)
    _common(p)

    p = sub.add_parser("predict", help="score features with the VirNucPro classifier → per-frame TSV")
    p.add_argument("--features", required=True, type=Path)
    p.add_argument("--classifier", required=True, type=Path, help="original .pth checkpoint or converted .safetensors")
    p.add_argument("--output", required=True, type=Path)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (the MLP is tiny: cpu is the default)")
    _common(p)

    p = sub.add_parser("summarize", help="per-sample tables in the original formats + reads.tsv from shard predictions")
    p.add_argument("--reads", required=True, type=Path, help="reads.tsv written by prepare")
    p.add_argument("--frames", required=True, nargs="+", type=Path, help="per-shard frame TSVs from predict")
    p.add_argument("--outdir", required=True, type=Path)
    _common(p)

    p = sub.add_parser("run", help="all stages in one process on this machine (the embedded default)")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT.fa")
    p.add_argument("--outdir", required=True, type=Path)
    p.add_argument("--chunk-length", type=int, default=500, choices=CHUNK_LENGTHS)
    p.add_argument("--dnabert", default=DEFAULT_DNABERT, help="DNABERT-S folder or hub id")
    p.add_argument("--esm", default=DEFAULT_ESM, help="ESM-2 .pt file or fair-esm model name")
    p.add_argument("--classifier", required=True, type=Path)
    _shard_options(p)
    p.add_argument("--tokens-per-batch-dna", type=int, default=None)
    p.add_argument("--tokens-per-batch-protein", type=int, default=None)
    p.add_argument("--store-dtype", default="float32", choices=["float32", "float16"])
    _device_precision(p)
    _common(p)

    p = sub.add_parser("models", help="download or convert model files")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    m = msub.add_parser("download", help="fetch DNABERT-S, ESM-2 3B and both classifiers into one folder")
    m.add_argument("--dir", required=True, type=Path)
    m.add_argument("--chunk-length", type=int, choices=CHUNK_LENGTHS, default=None, help="only this classifier")
    m.add_argument("--skip-esm", action="store_true", help="leave out ESM-2 (large)")
    _common(m)
    m = msub.add_parser("convert", help="original pickled classifier .pth → safetensors (safe, fast loading)")
    m.add_argument("--input", required=True, type=Path)
    m.add_argument("--output", required=True, type=Path)
    _common(m)

    p = sub.add_parser("benchmark", help="measure each stage's throughput; JSON report")
    p.add_argument("--output", type=Path, default=None, help="JSON file (default: stdout)")
    p.add_argument("--input", type=Path, nargs="*", default=None, help="FASTA inputs (default: synthetic reads)")
    p.add_argument("--read-lengths", type=int, nargs="+", default=[150, 300, 500])
    p.add_argument("--reads", type=int, default=2000, help="synthetic reads per length")
    p.add_argument("--dnabert", default=None, help="DNABERT-S folder; or 'random-full' / 'random-tiny'")
    p.add_argument("--esm", default=None, help="ESM-2 .pt; or 'random-3B' / 'random-tiny'")
    p.add_argument("--tokens-per-batch-dna", type=int, default=None)
    p.add_argument("--tokens-per-batch-protein", type=int, default=None)
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: measured matmul)")
    p.add_argument("--stages", nargs="+", default=["prepare", "dna", "protein"], choices=["prepare", "dna", "protein"])
    _device_precision(p)
    _common(p)

    p = sub.add_parser("profile", help="largest token batch that fits per model on this GPU, and the throughput curve")
    p.add_argument("--dnabert", default=None)
    p.add_argument("--esm", default=None)
    p.add_argument("--output", type=Path, default=None, help="JSON file (default: stdout)")
    p.add_argument("--max-tokens", type=int, default=1 << 20)
    _device_precision(p)
    _common(p)
    return parser


def _handler(command: str, sub: str | None) -> Callable[[argparse.Namespace], int | None]:
    """Import the stage lazily so ``--help`` and small stages do not pay for torch start-up."""
    if command == "prepare":
        from virnucpro.prepare import cli_prepare as fn
    elif command == "embed-dna":
        from virnucpro.embed import cli_embed_dna as fn
    elif command == "embed-protein":
        from virnucpro.embed import cli_embed_protein as fn
    elif command == "merge":
        from virnucpro.predict import cli_merge as fn
    elif command == "predict":
        from virnucpro.predict import cli_predict as fn
    elif command == "summarize":
        from virnucpro.summarize import cli_summarize as fn
    elif command == "run":
        from virnucpro.run import cli_run as fn
    elif command == "models" and sub == "download":
        from virnucpro.models.hub import cli_download as fn
    elif command == "models" and sub == "convert":
        from virnucpro.models.classifier import cli_convert as fn
    elif command == "benchmark":
        from virnucpro.bench import cli_benchmark as fn
    elif command == "profile":
        from virnucpro.bench import cli_profile as fn
    else:  # pragma: no cover - argparse rejects unknown commands first
        raise SystemExit(f"unknown command {command}")
    return fn


def _on_sigterm(signum: int, _frame: object) -> None:
    raise Interrupted(f"stopped by signal {signum}; finished outputs are kept, re-run the same command to resume")


def _setup_logging(level: int) -> None:
    """One stderr handler on the package logger (replaced on each call, so repeated in-process calls do not stack)."""
    for handler in [h for h in log.handlers if getattr(h, "_virnucpro_cli", False)]:
        log.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s virnucpro %(levelname)s: %(message)s", datefmt="%H:%M:%S"))
    handler._virnucpro_cli = True  # type: ignore[attr-defined]
    handler.setLevel(level)
    log.addHandler(handler)
    log.setLevel(min(level, logging.INFO))  # run.log keeps INFO even when stderr is quiet
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``virnucpro`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    _setup_logging(logging.WARNING if args.quiet else getattr(logging, args.log_level))
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        status = _handler(args.command, getattr(args, "models_command", None))(args)
    except VirNucProError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted; finished outputs are kept, re-run the same command to resume")
        return 130
    except MemoryError:
        log.error("out of host memory; use smaller shards (--shards/--tokens-per-shard) or batches")
        return 137
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
