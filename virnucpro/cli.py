"""The one command line: argument parsing only; every subcommand calls one stage function.

Errors derived from :class:`~virnucpro.errors.VirNucProError` become one line on stderr and their exit status, so bad
input never ends in a traceback. The Nextflow modules call these subcommands, and the pipeline's static tests parse
their command lines with :func:`build_parser`, so option names here are a contract.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Sequence

from virnucpro import __version__
from virnucpro.errors import EXIT_CODES, Interrupted, StorageError, VirNucProError

log = logging.getLogger("virnucpro")

CHUNK_LENGTHS = (300, 500)
PRECISIONS = ("auto", "fp32", "tf32", "bf16", "bf16-mixed", "fp16")
DEFAULT_DNABERT = "zhihan1996/DNABERT-S"
DEFAULT_ESM = "esm2_t36_3B_UR50D"
#: ``run``'s shard size when neither --shards nor --tokens-per-shard is given (virnucpro.runconfig.DEFAULT_TOKENS_PER_SHARD;
#: repeated here so --help does not import the runner).
RUN_TOKENS_PER_SHARD = 8_000_000


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the hand-written layout of descriptions/epilogs and appends ``(default: X)`` to every option that has a
    meaningful default, so ``--help`` always shows what a run would use without repeating it by hand."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, argparse.SUPPRESS) or action.required:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            text += " (default: %(default)s)"
        return text


def exit_codes_epilog() -> str:
    """The exit-status table printed under every ``--help`` (from :data:`virnucpro.errors.EXIT_CODES`)."""
    return "exit status:\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items())


CHUNK_HELP = (
    "window length in bp; must match the classifier's training (300_model.pth for 300, 500_model.pth for 500)"
)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output: warnings and errors only")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="stderr log level")


def _device_precision(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (auto: every CUDA GPU when available, else cpu)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: bf16 on CUDA >= 8.0, else fp32; tf32: fp32 storage, TF32 matmuls; "
                   "bf16-mixed: bf16 matmuls, fp32 residual stream/LayerNorm/softmax (docs/precision.md)")


def _embed_options(p: argparse.ArgumentParser, default_model: str) -> None:
    p.add_argument("--model", default=default_model, help="local model path or hub name")
    p.add_argument("--input", required=True, type=Path, help="FASTA of sequences to embed (a prepare shard)")
    p.add_argument("--output", required=True, type=Path, help="HDF5 file to write (ids + embeddings)")
    p.add_argument("--tokens-per-batch", type=int, default=None, help="padded tokens per forward pass (default: chosen per model and device)")
    p.add_argument("--batch-scale", type=float, default=1.0,
                   help="multiply the token budget (given or default) by this factor in (0, 1]; the pipeline halves it "
                   "on each retry after an out-of-memory exit")
    p.add_argument("--store-dtype", default="float32", choices=["float32", "float16"], help="dtype stored in HDF5")
    _workers(p)
    _device_precision(p)
    _compile(p)


def _compile(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compile", action="store_true",
                   help="torch.compile each encoder layer (off by default: not measured faster yet, see docs/precision.md)")


def _workers(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=None,
                   help="tokenisation threads feeding each device (default: one per CPU core, at most 8)")

def _shard_options(p: argparse.ArgumentParser, default_tokens: int | None = None) -> None:
    group = p.add_mutually_exclusive_group()
    if default_tokens is None:
        shards_help = "number of token-balanced shards (default: 1, or as --tokens-per-shard gives)"
        tokens_help = "start a new shard after this many ESM-2 tokens (default: off, --shards decides)"
    else:
        shards_help = "number of token-balanced shards (default: as many as --tokens-per-shard gives)"
        tokens_help = f"start a new shard after this many ESM-2 tokens (default: {default_tokens:,} unless --shards is given)"
    group.add_argument("--shards", type=int, default=None, help=shards_help)
    group.add_argument("--tokens-per-shard", type=int, default=None, help=tokens_help)


def _add(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """A subcommand with a one-line summary (command list), a description (its own --help) and the exit codes."""
    return sub.add_parser(
        name, help=summary, description=description, epilog=exit_codes_epilog(), formatter_class=_HelpFormatter,
        allow_abbrev=False,
    )


def _models_folder_options(p: argparse.ArgumentParser, dir_help: str, skip_esm_help: str) -> None:
    """The options ``models download`` and ``models verify`` share: one folder, which classifiers, ESM-2 or not."""
    p.add_argument("--dir", required=True, type=Path, help=dir_help)
    p.add_argument("--chunk-length", type=int, choices=CHUNK_LENGTHS, default=None, help="only this classifier (default: both)")
    p.add_argument("--skip-esm", action="store_true", help=skip_esm_help)
    _common(p)


def build_parser() -> argparse.ArgumentParser:
    """The full parser; tests and the pipeline's contract checks use it to validate command lines."""
    parser = argparse.ArgumentParser(
        prog="virnucpro",
        description="Identify viral sequences with VirNucPro (DNABERT-S + ESM-2 embeddings, MLP classifier).",
        epilog=exit_codes_epilog(),
        formatter_class=_HelpFormatter,
        allow_abbrev=False,  # an abbreviated option must not pass the pipeline's command-line contract checks
    )
    parser.add_argument("--version", action="version", version=f"virnucpro {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _add(sub, "prepare", "cut windows, translate six frames, write token-balanced shards + reads.tsv",
             "Cut every read into windows, translate each window in six frames, keep the stop-free frames and write "
             "them as paired nucleotide/protein shards balanced by ESM-2 tokens, with reads.tsv (one row and status "
             "per input read) and manifest.json.")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT.fa",
                   help="FASTA files (plain, gzip, bzip2 or xz; zstd with the zstandard package), '-' for standard input, or a stream such as <(zcat reads.fa.gz)")
    p.add_argument("--outdir", required=True, type=Path, help="folder for the shards, reads.tsv and manifest.json")
    p.add_argument("-j", "--workers", type=int, default=None,
                   help="processes translating blocks of reads in parallel; outputs are identical for any value "
                        "(default: every core this process may use, at most 8)")
    p.add_argument("--chunk-length", type=int, default=500, choices=CHUNK_LENGTHS, help=CHUNK_HELP)
    _shard_options(p)
    p.add_argument("--prefix", default="shard", help="shard file name prefix")
    p.add_argument("--write-windows", action="store_true", help="also write windows.fa as the original chunk file")
    p.add_argument(
        "--allow-empty", action="store_true",
        help="an input with no FASTA records is a warning, not an error (pipeline samples: one empty sample must not stop the others)",
    )
    _common(p)

    p = _add(sub, "embed-dna", "DNABERT-S mean embeddings of nucleotide frames → HDF5",
             "Embed nucleotide frames with DNABERT-S (mean over all tokens, as the original) into an HDF5 file.")
    _embed_options(p, DEFAULT_DNABERT)
    _common(p)

    p = _add(sub, "embed-protein", "ESM-2 mean embeddings (last layer) of protein frames → HDF5",
             "Embed protein frames with ESM-2 (last layer, mean over residues, as the original) into an HDF5 file.")
    _embed_options(p, DEFAULT_ESM)
    _common(p)

    p = _add(sub, "merge", "join DNABERT-S and ESM-2 embeddings by id → features HDF5",
             "Join the two embedding files by id (DNABERT-S part first) into the classifier's feature matrix; an id "
             "present on one side only is an error naming it.")
    p.add_argument("--dna", required=True, type=Path, help="HDF5 written by embed-dna")
    p.add_argument("--protein", required=True, type=Path, help="HDF5 written by embed-protein")
    p.add_argument("--output", required=True, type=Path, help="features HDF5 to write")
    _common(p)

    p = _add(sub, "predict", "score features with the VirNucPro classifier → per-frame TSV",
             "Score every frame of a features HDF5 with the classifier; writes the original prediction_results.txt "
             "format (Sequence_ID, Prediction, score1 = others, score2 = virus).")
    p.add_argument("--features", required=True, type=Path, help="features HDF5 written by merge (or another tool in that layout)")
    p.add_argument("--classifier", required=True, type=Path, help="original .pth checkpoint or converted .safetensors")
    p.add_argument("--output", required=True, type=Path, help="per-frame TSV to write")
    p.add_argument("--batch-size", type=int, default=256, help="frames per classifier forward pass")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (the MLP is tiny)")
    p.add_argument("--chunk-length", type=int, default=None, choices=CHUNK_LENGTHS,
                   help="window length the features were cut with; checked against a published classifier (default: unknown, with a warning)")
    p.add_argument("--allow-chunk-mismatch", action="store_true",
                   help="use a published classifier with the other chunk length anyway (refused otherwise)")
    _common(p)

    p = _add(sub, "summarize", "per-sample tables in the original formats + reads.tsv from shard predictions",
             "Combine the per-shard frame tables of one sample into the original's two tables and a per-read "
             "reads.tsv (call and status for every input read), plus virus_summary.tsv (call and confidence per "
             "read), virus_regions.tsv (viral runs of windows), virus.fna, report.html and summary.json (counts, "
             "unscored reads per reason, warnings; docs/output.md).")
    p.add_argument("--reads", required=True, type=Path, help="reads.tsv written by prepare")
    p.add_argument("--frames", required=True, nargs="+", type=Path, help="per-shard frame TSVs from predict, in shard order (any order with --manifest)")
    p.add_argument("--manifest", type=Path, default=None,
                   help="prepare's manifest.json: each table is placed by the shard it says it holds; a shard missing, "
                        "given twice or from another prepare run is refused (shards without frames may be left out); default: tables "
                        "taken in the order given, unchecked")
    p.add_argument("--inputs", required=True, nargs="+", type=Path, metavar="INPUT.fa",
                   help="the FASTA files given to prepare, same order (their sequences go into virus.fna)")
    p.add_argument("--chunk-length", required=True, type=int, choices=CHUNK_LENGTHS,
                   help="the chunk length prepare used (places windows and viral regions on the contigs)")
    p.add_argument("--outdir", required=True, type=Path,
                   help="folder for the per-sample outputs (original tables, reads.tsv, virus_summary.tsv, virus_regions.tsv, virus.fna, report.html)")
    _common(p)

    p = _add(sub, "run", "all stages in one process on this machine (the embedded default)",
             "Run prepare, both embeddings, merge, predict and summarize in one process, resumable: re-running the "
             "same command reuses every finished output. Inputs, output folder and all three models are checked "
             "before any work starts.")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT.fa",
                   help="FASTA files (plain, gzip, bzip2 or xz; zstd with the zstandard package; files, not streams: run reads them again for the final tables)")
    p.add_argument("--outdir", required=True, type=Path, help="output folder (final tables, manifest.json, run.log, work/)")
    p.add_argument("--chunk-length", type=int, default=500, choices=CHUNK_LENGTHS, help=CHUNK_HELP)
    p.add_argument("--dnabert", default=DEFAULT_DNABERT, help="DNABERT-S folder or Hugging Face id")
    p.add_argument("--esm", default=DEFAULT_ESM, help="ESM-2 .pt file or fair-esm model name")
    p.add_argument("--classifier", required=True, type=Path, help="classifier for --chunk-length: original .pth or converted .safetensors")
    _shard_options(p, default_tokens=RUN_TOKENS_PER_SHARD)
    p.add_argument("--tokens-per-batch-dna", type=int, default=None, help="DNABERT-S padded tokens per forward pass (default: chosen per device)")
    p.add_argument("--tokens-per-batch-protein", type=int, default=None, help="ESM-2 padded tokens per forward pass (default: chosen per device)")
    p.add_argument("--store-dtype", default="float32", choices=["float32", "float16"], help="dtype of the stored embeddings")
    _workers(p)
    p.add_argument("--allow-chunk-mismatch", action="store_true",
                   help="use a published classifier with the other chunk length anyway (refused otherwise)")
    _device_precision(p)
    _compile(p)
    _common(p)

    p = _add(sub, "models", "download or convert model files", "Fetch the model files once, or convert a classifier.")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    m = _add(msub, "download", "fetch DNABERT-S, ESM-2 3B and both classifiers into one folder",
             "Download DNABERT-S (config, tokenizer, weights; never remote code), ESM-2 3B and the published "
             "classifiers into one folder, with checksums.sha256.")
    _models_folder_options(m, "folder to download into", "leave out ESM-2 (large)")
    m = _add(msub, "verify", "check a models folder against its checksums.sha256",
             "Check that every file a run needs is in the folder and matches the digest recorded in its "
             "checksums.sha256 (written by `models download`). Exit 0 when all match, 3 naming each bad file.")
    _models_folder_options(m, "models folder written by `virnucpro models download`", "ESM-2 is not needed (given separately)")
    m = _add(msub, "convert", "fair-esm ESM-2 .pt or original classifier .pth → safetensors (kind detected)",
             "Write the weights of a fair-esm ESM-2 checkpoint (memory-mapped, fast loading) or of an original pickled "
             "classifier as safetensors, loaded without any unpickling. The input kind is detected from the file.")
    m.add_argument("--input", required=True, type=Path, help="fair-esm ESM-2 .pt or original classifier .pth")
    m.add_argument("--output", required=True, type=Path, help=".safetensors file to write")
    m.add_argument("--dtype", default="keep", choices=["keep", "fp32", "bf16", "fp16"],
                   help="ESM-2 only: stored dtype (default keep: the checkpoint's own, lossless)")
    _common(m)

    p = _add(sub, "benchmark", "measure each stage's throughput; JSON report",
             "Measure the throughput of prepare and both embedding stages on this machine; writes a JSON report.")
    p.add_argument("--output", type=Path, default=None, help="JSON file (default: stdout)")
    p.add_argument("--input", type=Path, nargs="*", default=None, help="FASTA inputs (default: synthetic reads)")
    p.add_argument("--read-lengths", type=int, nargs="+", default=[150, 300, 500], help="lengths of the synthetic reads")
    p.add_argument("--reads", type=int, default=2000, help="synthetic reads per length")
    p.add_argument("--dnabert", default=None, help="DNABERT-S folder; or 'random-full' / 'random-tiny' (default: random-tiny)")
    p.add_argument("--esm", default=None, help="ESM-2 .pt; or 'random-3B' / 'random-tiny' (default: random-tiny)")
    p.add_argument("--tokens-per-batch-dna", type=int, default=None, help="DNABERT-S padded tokens per forward pass (default: chosen per device)")
    p.add_argument("--tokens-per-batch-protein", type=int, default=None, help="ESM-2 padded tokens per forward pass (default: chosen per device)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="device peak for MFU (default: the GPU's datasheet dense peak for the precision; CPU: measured matmul)")
    p.add_argument("--stages", nargs="+", default=["prepare", "dna", "protein"], choices=["prepare", "dna", "protein"], help="stages to measure")
    p.add_argument("--host-only", action="store_true",
                   help="replace the forward pass by a no-op: the host ceiling (seq/s, peak RSS) of the production path")
    p.add_argument("--workers", type=int, nargs="+", default=None,
                   help="tokenisation threads; several values measure each (default: one per CPU core, at most 8)")
    _device_precision(p)
    _common(p)

    p = _add(sub, "profile", "largest token batch that fits per model on this GPU, and the throughput curve",
             "Find the largest padded-token batch each model fits in this GPU's memory and the throughput at each size.")
    p.add_argument("--dnabert", default=None, help="DNABERT-S folder (default: random weights of the real size)")
    p.add_argument("--esm", default=None, help="ESM-2 .pt (default: random weights of the real size)")
    p.add_argument("--output", type=Path, default=None, help="JSON file (default: stdout)")
    p.add_argument("--max-tokens", type=int, default=1 << 20, help="largest batch tried, in padded tokens")
    _device_precision(p)
    _common(p)
    return parser


def _handler(command: str, sub: str | None) -> Callable[[argparse.Namespace], int | None]:
    """Import the stage lazily so ``--help`` and small stages do not pay for torch start-up."""
    if command == "prepare":
        # prepare does no linear algebra: numpy's OpenBLAS need not start (and spin) a thread per core at import
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
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
    elif command == "models" and sub == "verify":
        from virnucpro.models.hub import cli_verify as fn
    elif command == "models" and sub == "convert":
        from virnucpro.models.convert import cli_convert as fn
    elif command == "benchmark":
        from virnucpro.bench import cli_benchmark as fn
    elif command == "profile":
        from virnucpro.bench import cli_profile as fn
    else:  # pragma: no cover - argparse rejects unknown commands first
        raise SystemExit(f"unknown command {command}")
    return fn


def _on_sigterm(signum: int, _frame: object) -> None:
    raise Interrupted(f"stopped by signal {signum}; finished outputs are kept, re-run the same command to resume")


def _redeliver_interrupt(unraisable: "sys.UnraisableHookArgs") -> None:
    """A signal handled inside a finaliser or weakref callback (garbage collection can run one at any moment) raises
    where Python must ignore every exception; SIGTERM is then sent again so it lands in code that can stop the run.

    From a timer thread, a moment later: sent from here it would be handled at once, inside this hook, and be lost
    again. Should it land in a finaliser again, this hook sends it once more.
    """
    if isinstance(unraisable.exc_value, Interrupted):
        resend = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM))
        resend.daemon = True
        resend.start()
        return
    sys.__unraisablehook__(unraisable)


def _install_stop_handling() -> None:
    """SIGTERM (schedulers, ``kill``) stops the run like Ctrl-C: :class:`Interrupted`, exit 143, outputs consistent."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    sys.unraisablehook = _redeliver_interrupt


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
    """Entry point of the ``virnucpro`` console script; returns the exit status (see :data:`EXIT_CODES`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = ["virnucpro", *argv]  # recorded in run.log / manifest.json
    _setup_logging(logging.WARNING if args.quiet else getattr(logging, args.log_level))
    _install_stop_handling()
    try:
        status = _handler(args.command, getattr(args, "models_command", None))(args)
    except (VirNucProError, Interrupted) as exc:
        log.error("%s", exc)
        return exc.exit_code
    except OSError as exc:
        # the one place where the operating system's refusals (disk full, read-only, permission) become one line;
        # writers have already removed their temp files on the way out
        error = StorageError.from_os_error(exc, getattr(args, "outdir", None) or getattr(args, "output", None))
        log.error("%s", error)
        return error.exit_code
    except KeyboardInterrupt:
        log.error("interrupted; finished outputs are kept, re-run the same command to resume")
        return 130
    except MemoryError:
        log.error("out of host memory; use smaller shards (--shards/--tokens-per-shard) or batches")
        return 137
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
