"""Prepare stage: golden shards, token balance, every read in reads.tsv with a status, bad input handling."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import INPUT_FA, expected
from virnucpro.cli import main
from virnucpro.errors import InputError
from virnucpro.fasta import read_fasta
from virnucpro.frames import block_frames
from virnucpro.prepare import prepare, read_reads_table


@pytest.mark.parametrize("chunk", [300, 500])
def test_single_shard_equals_original_identified_files(tmp_path: Path, chunk: int) -> None:
    assert main(["prepare", str(INPUT_FA), "--outdir", str(tmp_path), "--chunk-length", str(chunk), "--write-windows", "-q"]) == 0
    folder = expected(chunk)
    assert (tmp_path / "shard_0001.nuc.fa").read_bytes() == (folder / "identified_nucleotide.fa").read_bytes()
    assert (tmp_path / "shard_0001.prot.fa").read_bytes() == (folder / "identified_protein.faa").read_bytes()
    assert (tmp_path / "windows.fa").read_bytes() == (folder / "chunked.fa").read_bytes()
    summary = json.loads((folder.parent / "summary.json").read_text())["lengths"][str(chunk)]
    rows = list(read_reads_table(tmp_path / "reads.tsv"))
    assert len(rows) == 60
    assert sum(int(r["windows"]) for r in rows) == summary["n_chunks"]
    assert sum(int(r["frames"]) for r in rows) == summary["n_identified_frames"]
    no_frame = [r["read_id"] for r in rows if r["frames"] == "0"]
    assert no_frame == summary["reads_without_frames"]
    # the all-N read (kind=nrun) has no codon of A/C/G/T at all; every other frame-less read has stops everywhere
    statuses = {r["read_id"]: r["status"] for r in rows if r["frames"] == "0"}
    assert statuses.pop("NC_066051.2") == "no_translatable_codon"
    assert set(statuses.values()) == {"no_stop_free_frame"}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["parameters"]["chunk_length"] == chunk
    assert len(manifest["inputs"][0]["sha256"]) == 64


def test_shards_are_token_balanced_and_keep_read_order(tmp_path: Path) -> None:
    manifest = prepare([INPUT_FA], tmp_path, 300, n_shards=4, progress=False)
    tokens = [s["tokens"] for s in manifest["shards"]]
    assert len(tokens) == 4 and max(tokens) <= 1.35 * min(tokens)
    # union of shards == the original's identified frames; within each shard, the original's relative order
    original = [r.id for r in read_fasta(expected(300) / "identified_nucleotide.fa")]
    position = {fid: i for i, fid in enumerate(original)}
    seen: list[str] = []
    for shard in manifest["shards"]:
        nuc = [r.id for r in read_fasta(tmp_path / shard["nuc"])]
        prot = [r.id for r in read_fasta(tmp_path / shard["prot"])]
        assert nuc == prot
        assert [position[i] for i in nuc] == sorted(position[i] for i in nuc)
        assert shard["tokens"] == sum(len(r.sequence) + 2 for r in read_fasta(tmp_path / shard["prot"]))
        seen += nuc
    assert sorted(seen) == sorted(original)


def test_tokens_per_shard_starts_new_shards(tmp_path: Path) -> None:
    manifest = prepare([INPUT_FA], tmp_path, 500, tokens_per_shard=3000, progress=False)
    assert len(manifest["shards"]) >= 5
    # a shard exceeds the limit only when a single read is bigger than it
    assert all(s["tokens"] <= 3000 or s["reads"] == 1 for s in manifest["shards"])


def test_every_read_gets_a_status(tmp_path: Path) -> None:
    fa = tmp_path / "mixed.fa"
    orf = "ATG" + "GCC" * 60
    fa.write_text(f">ok\n{orf}\n>empty\n>short\nAC\n>stops\n{'CTAG' * 60}\n>bad\nACGT123\n>ok\n{orf}\n")
    gz = tmp_path / "more.fa.gz"
    gz.write_bytes(gzip.compress(f">gz1 desc\n{orf.lower()}\n".encode()))
    prepare([fa, gz], tmp_path / "out", 300, progress=False)
    rows = {(r["read_id"], r["record"], r["file"]): r["status"] for r in read_reads_table(tmp_path / "out" / "reads.tsv")}
    assert rows == {
        ("ok", "1", "mixed.fa"): "ok",
        ("empty", "2", "mixed.fa"): "empty",
        ("short", "3", "mixed.fa"): "too_short",
        ("stops", "4", "mixed.fa"): "no_stop_free_frame",
        ("bad", "5", "mixed.fa"): "invalid_characters",
        ("ok", "6", "mixed.fa"): "duplicate_id",
        ("gz1", "1", "more.fa.gz"): "ok",
    }


@pytest.mark.parametrize("content,needle", [(b"", "no FASTA records"), (b"\x00\x00junk", "binary data")])
def test_bad_files_exit_nonzero_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, content: bytes, needle: str) -> None:
    bad = tmp_path / "bad.fa"
    bad.write_bytes(content)
    assert main(["prepare", str(bad), "--outdir", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and str(bad) in err[0]
    assert not (tmp_path / "o" / "manifest.json").exists()
    assert not list((tmp_path / "o").glob("shard_*"))  # nothing half-written under a final name


def test_invalid_shard_count(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--shards"):
        prepare([INPUT_FA], tmp_path, 300, n_shards=0, progress=False)


# --------------------------------------------------------------------------------------------------------------------
# Blocks in parallel, statuses, RNA, protein input, streams, the folder lock

import logging
import subprocess
import sys

from virnucpro.errors import FolderBusy
from virnucpro.lock import folder_lock
from virnucpro.shards import ShardSet

OUTPUTS = ("reads.tsv", "manifest.json", "windows.fa")


def _mixed_fasta(path: Path, copies: int = 6) -> Path:
    """The reference reads several times over (so later copies are duplicate ids), plus every odd kind of read."""
    reference = INPUT_FA.read_text()
    extra = ">allN\n" + "N" * 700 + "\n>rna\n" + ("AUGGCC" * 70).lower() + "\n>bad\nACGT123\n>empty\n>short\nAC\n"
    path.write_text(reference * copies + extra)
    return path


@pytest.mark.parametrize("options", [{}, {"n_shards": 3}, {"tokens_per_shard": 2000}])
def test_workers_and_block_size_do_not_change_a_byte(tmp_path: Path, options: dict) -> None:
    fasta = _mixed_fasta(tmp_path / "in.fa")
    runs = {}
    for name, workers, block in (("serial", 1, 1 << 20), ("blocks", 1, 3000), ("parallel", 2, 3000)):
        out = tmp_path / name
        prepare([fasta], out, 300, workers=workers, block_bytes=block, write_windows=True, progress=False, **options)
        runs[name] = {p.name: p.read_bytes() for p in sorted(out.iterdir()) if not p.name.startswith(".")}
    assert runs["serial"] == runs["blocks"] == runs["parallel"]
    rows = list(read_reads_table(tmp_path / "serial" / "reads.tsv"))
    assert sum(r["status"] == "duplicate_id" for r in rows) == 5 * 60


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_header_deep_in_the_input_names_its_record_and_line_with_any_workers(tmp_path: Path, workers: int) -> None:
    """A header that is not UTF-8, 40 blocks in, is found by whichever process parses its block; the error names the
    record and line counted across all blocks before it, and no output is left behind."""
    good = INPUT_FA.read_bytes()
    records = good.count(b"\n>") + 1
    lines = good.count(b"\n")
    fasta = tmp_path / "in.fa"
    fasta.write_bytes(good * 40 + b">bad\xff id\nACGT\n" + good)
    out = tmp_path / "o"
    with pytest.raises(InputError) as caught:
        prepare([fasta], out, 500, workers=workers, block_bytes=len(good) // 3, progress=False)
    assert str(caught.value).startswith(f"{fasta}: record {40 * records + 1} (bad\\xff), line {40 * lines + 1}: header is not valid text")
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == []


def test_parallel_run_uses_worker_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import virnucpro.blockrunner as blockrunner

    started = []
    real = blockrunner.BlockRunner._executor

    def spy(self):
        pool = real(self)
        started.append(pool)
        return pool

    monkeypatch.setattr(blockrunner.BlockRunner, "_executor", spy)
    prepare([_mixed_fasta(tmp_path / "in.fa", 2)], tmp_path / "o", 500, workers=2, block_bytes=2000, progress=False)
    assert started, "a multi-block input with workers=2 must use the pool"


def test_least_loaded_shard_rule_is_unchanged_with_many_shards(tmp_path: Path) -> None:
    """The heap gives the same choice as the original min() over (tokens, index) for every read."""
    rng = np.random.default_rng(5)
    shards = ShardSet(tmp_path, "s", 1000, None)
    loads = [0] * 1000
    tokens = rng.integers(3, 400, size=5000).tolist()
    chosen = [shards.assign(1, tokens[0])] + shards.assign_many([1] * 4999, tokens[1:])  # both entry points
    for t, index in zip(tokens, chosen):
        expected_index = min(range(1000), key=lambda i: (loads[i], i))
        assert index == expected_index + 1
        loads[expected_index] += t
    assert [s.tokens for s in shards.shards] == loads


def test_no_translatable_codon_status(tmp_path: Path) -> None:
    fa = tmp_path / "n.fa"
    fa.write_text(
        ">allN\n" + "N" * 320 + "\n"  # two windows, nothing to translate anywhere
        ">iupac\nNRYNNKMNNNSW\n"  # ambiguous codes only
        ">mostlyN_stops\n" + "N" * 200 + "CTAG" * 10 + "\n"  # codons exist, every translated frame has a stop
        ">mostlyN_ok\n" + "N" * 200 + "ATG\n"  # one codon each in F1 (M) and R1 (H): scored, as the original would
        ">NNN\nNNN\n>NN\nNN\n"
    )
    prepare([fa], tmp_path / "o", 300, progress=False)
    rows = {r["read_id"]: (r["status"], r["windows"], r["frames"]) for r in read_reads_table(tmp_path / "o" / "reads.tsv")}
    assert rows == {
        "allN": ("no_translatable_codon", "2", "0"),
        "iupac": ("no_translatable_codon", "1", "0"),
        "mostlyN_stops": ("no_stop_free_frame", "1", "0"),
        "mostlyN_ok": ("ok", "1", "2"),
        "NNN": ("no_translatable_codon", "1", "0"),
        "NN": ("too_short", "1", "0"),
    }


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_rna_is_read_as_dna_with_a_counted_warning(tmp_path: Path) -> None:
    dna = INPUT_FA.read_text()
    rna = "".join(line if line.startswith(">") else line.replace("T", "U").replace("t", "u") for line in dna.splitlines(True))
    (tmp_path / "dna.fa").write_text(dna)
    (tmp_path / "rna.fa").write_text(rna)
    prepare([tmp_path / "dna.fa"], tmp_path / "d", 300, progress=False)
    handler = _Messages()
    logging.getLogger("virnucpro.prepare").addHandler(handler)
    try:
        manifest = prepare([tmp_path / "rna.fa"], tmp_path / "r", 300, progress=False)
    finally:
        logging.getLogger("virnucpro.prepare").removeHandler(handler)
    with_u = sum(1 for r in read_fasta(tmp_path / "rna.fa") if "U" in r.sequence.upper())
    assert with_u > 40 and manifest["inputs"][0]["rna_reads"] == with_u
    assert any(f"rna.fa: {with_u} read(s) contain U (RNA)" in m for m in handler.messages)
    for name in ("shard_0001.nuc.fa", "shard_0001.prot.fa"):
        assert (tmp_path / "r" / name).read_bytes() == (tmp_path / "d" / name).read_bytes()
    assert (tmp_path / "r" / "reads.tsv").read_text().replace("rna.fa", "x") == (tmp_path / "d" / "reads.tsv").read_text().replace("dna.fa", "x")


def test_protein_fasta_is_refused_naming_file_and_record(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fa = tmp_path / "proteins.fa"
    fa.write_text(">ok\nATGGCCAAA\n>p1 protein\nMKVLEFTQPLLIEQ\n>p2\nMSTNPKPQRKTKRNTNRRPQDVKFPGG\n")
    assert main(["prepare", str(fa), "--outdir", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{fa}: 2 of 3 records hold letters that are not nucleotide codes (e.g. record 2 (p1) has 'LEFQPI')" in err[0]
    assert "protein FASTA" in err[0]
    assert not (tmp_path / "o" / "manifest.json").exists() and not list((tmp_path / "o").glob("shard_*"))


def test_a_few_bad_reads_are_listed_not_refused(tmp_path: Path) -> None:
    fa = tmp_path / "mostly_dna.fa"
    fa.write_text(">a\nATGGCCAAA\n>b\nATGGCC\n>p\nMKVLEF\n")
    manifest = prepare([fa], tmp_path / "o", 300, progress=False)
    assert manifest["statuses"] == {"ok": 2, "invalid_characters": 1}


def test_directory_input_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["prepare", str(tmp_path), "--outdir", str(tmp_path / "o"), "-q"]) == 2
    assert f"{tmp_path}: is a directory, not a FASTA file" in capsys.readouterr().err


def test_prepare_respects_the_folder_lock(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with folder_lock(tmp_path / "busy"):
        with pytest.raises(FolderBusy, match="lock held"):
            prepare([INPUT_FA], tmp_path / "busy", 300, progress=False)
        assert main(["prepare", str(INPUT_FA), "--outdir", str(tmp_path / "busy"), "-q"]) == FolderBusy.exit_code
    assert "another virnucpro run is using this folder" in capsys.readouterr().err
    assert not (tmp_path / "busy" / "reads.tsv").exists()
    prepare([INPUT_FA], tmp_path / "busy", 300, progress=False)  # free again once the holder is gone


def _cli(*args: str, stdin: bytes | None = None, shell: str | None = None) -> subprocess.CompletedProcess:
    command = shell if shell else [sys.executable, "-m", "virnucpro", *args]
    return subprocess.run(command, input=stdin, capture_output=True, shell=shell is not None, executable="/bin/bash" if shell else None)


def test_streamed_input_from_stdin_and_process_substitution(tmp_path: Path) -> None:
    gz = tmp_path / "reads.fa.gz"
    gz.write_bytes(gzip.compress(INPUT_FA.read_bytes()))
    done = _cli("prepare", "-", "--outdir", str(tmp_path / "stdin"), "--chunk-length", "300", "-q", stdin=gz.read_bytes())
    assert done.returncode == 0, done.stderr
    python = sys.executable
    done = _cli(shell=f"'{python}' -m virnucpro prepare <(zcat '{gz}') --outdir '{tmp_path / 'fifo'}' --chunk-length 300 -q")
    assert done.returncode == 0, done.stderr
    reference = expected(300) / "identified_protein.faa"
    for name in ("stdin", "fifo"):
        assert (tmp_path / name / "shard_0001.prot.fa").read_bytes() == reference.read_bytes()
    manifest = json.loads((tmp_path / "stdin" / "manifest.json").read_text())
    assert manifest["inputs"][0]["path"] == "-" and manifest["inputs"][0]["records"] == 60
    assert manifest["inputs"][0]["sha256"] == __import__("hashlib").sha256(gz.read_bytes()).hexdigest()
    assert {r["file"] for r in read_reads_table(tmp_path / "stdin" / "reads.tsv")} == {"stdin"}


@pytest.mark.parametrize("args", [["--workers", "0"], ["--shards", "0"], ["--tokens-per-shard", "0"]])
def test_bad_options_create_nothing(tmp_path: Path, args: list[str]) -> None:
    assert main(["prepare", str(INPUT_FA), "--outdir", str(tmp_path / "o"), "-q", *args]) == 2
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("high", [10, 10**12])  # few distinct tails; counts so large that a mixed-radix key overflows
def test_reads_rows_are_the_plain_formatting_of_each_row(high: int) -> None:
    from virnucpro.readstable import STATUSES, rows_text

    rng = np.random.default_rng(7)
    n = 2000
    columns = [rng.integers(0, h, n) for h in (high, 3, 7, high, 1000 if high > 10 else 2)]
    columns.append(rng.integers(0, len(STATUSES), n).astype(np.uint8))
    ids = [f"r{i}" for i in range(n)]
    expected = "".join(
        f"{ids[i]}\tin.fa\t{5 + i}\t" + "\t".join(str(int(c[i])) for c in columns[:-1]) + f"\t{STATUSES[columns[-1][i]]}\n"
        for i in range(n)
    )
    assert rows_text(ids, "in.fa", 5, *columns).decode() == expected


def test_prepare_command_starts_no_blas_threads(tmp_path: Path) -> None:
    """``virnucpro prepare`` does no linear algebra, so numpy's OpenBLAS must not start a thread per core (they cost
    start-up time, and CPU the prepare workers want); the process ends its run with its main thread only."""
    import os

    script = "import os, sys\nfrom virnucpro.cli import main\nmain(sys.argv[1:])\nprint(len(os.listdir('/proc/self/task')))"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    argv = ["prepare", str(INPUT_FA), "--outdir", str(tmp_path / "o"), "-q", "--workers", "1"]
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "1"


def test_letter_classes_says_when_a_block_needs_no_upper_casing() -> None:
    """The upper-case flag lets block_frames skip a copy: it must be False whenever any letter is not an upper-case
    nucleotide code (lower case, U, or junk), and the frames must not depend on it."""
    from virnucpro.readblock import _letter_classes

    lengths = np.array([4, 4])
    assert _letter_classes(b"ACGTNNRY", lengths)[1] is True
    for joined in (b"ACGTacgt", b"ACGUACGU", b"ACGTAC-T"):
        assert _letter_classes(joined, lengths)[1] is False
    reads = [b"ATGGCCAAATTTGGGCCC" * 3, b"atggccaaatttgggccc" * 3]
    upper = block_frames([r.upper() for r in reads], 300, upper_case=True)
    mixed = block_frames(reads, 300)
    assert upper.nucleotides == mixed.nucleotides and upper.proteins == mixed.proteins
