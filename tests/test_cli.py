"""The command line itself: version, help (descriptions, defaults, exit statuses) on every subcommand, one exit-status
table shared by the code, --help and the README, errors as one line without traceback."""

from __future__ import annotations

import argparse
import errno
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from virnucpro import __version__
from virnucpro.cli import build_parser, main
from virnucpro.errors import EXIT_CODES, FolderBusy, InputError, Interrupted, ModelError, NumericError, StorageError

SUBCOMMANDS = [
    ["prepare"], ["embed-dna"], ["embed-protein"], ["merge"], ["predict"], ["summarize"], ["run"],
    ["models", "download"], ["models", "convert"], ["benchmark"], ["profile"],
]


def test_version(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"virnucpro {__version__}"


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=" ".join)
def test_help_on_every_subcommand(words: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*words, "--help"])
    assert exit_.value.code == 0 and "usage: virnucpro" in capsys.readouterr().out


def test_console_script_reports_missing_input_without_traceback(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "virnucpro", "prepare", str(tmp_path / "missing.fa"), "--outdir", str(tmp_path / "o")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "missing.fa: no such file" in proc.stderr
    assert not (tmp_path / "o").exists()  # refused before anything was created


# --------------------------------------------------------------------------------------------------------------------
# --help: descriptions, option help with defaults, exit statuses


def _parsers(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = [(words, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _parsers(sub, (*words, name))
    return found


def test_every_subcommand_and_option_is_explained_with_its_default() -> None:
    parsers = _parsers(build_parser())
    assert {w for w, _ in parsers} >= {tuple(w) for w in SUBCOMMANDS}
    for words, parser in parsers:
        assert parser.description, f"virnucpro {' '.join(words)} has no description"
        text = parser.format_help()
        assert "exit status:" in text and all(f"{code:>3}  {meaning}" in text for code, meaning in EXIT_CODES.items())
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            name = "/".join(action.option_strings) or action.dest
            assert action.help, f"virnucpro {' '.join(words)} {name} has no help"
            if action.required or isinstance(action, argparse._StoreTrueAction):
                continue
            shown = " ".join(parser._get_formatter()._expand_help(action).split())  # type: ignore[attr-defined]
            if action.default is None:
                assert "default" in shown, f"virnucpro {' '.join(words)} {name}: say what happens by default"
            else:
                assert f"(default: {action.default})" in shown, f"virnucpro {' '.join(words)} {name}: {shown}"


def test_chunk_length_help_says_it_must_match_the_classifier(capsys: pytest.CaptureFixture) -> None:
    for command in ("run", "prepare"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "must match the classifier's training (300_model.pth for 300, 500_model.pth for 500) (default: 500)" in text


# --------------------------------------------------------------------------------------------------------------------
# exit statuses: one table (errors.EXIT_CODES), the README's table equal to it, the same code for the same fault


def test_readme_exit_status_table_is_the_real_one() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Exit status", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+)\s*\| (.+?)\s*\|$", section, re.MULTILINE)  # cells may be padded (prettier)
    assert {int(code): meaning for code, meaning in rows} == EXIT_CODES
    assert [int(code) for code, _ in rows] == list(EXIT_CODES)
    classes = [InputError, ModelError, NumericError, StorageError, FolderBusy, Interrupted]
    assert all(cls.exit_code in EXIT_CODES for cls in classes)
    assert len({cls.exit_code for cls in classes}) == len(classes)


@pytest.mark.parametrize("fault", ["missing", "directory"])
def test_missing_or_directory_input_same_status_in_run_and_prepare(fault: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "nope.fa"
    if fault == "directory":
        bad.mkdir()
    words = "no such file" if fault == "missing" else "is a directory"
    for argv in (["prepare", str(bad), "--outdir", str(tmp_path / "p"), "-q"],
                 ["run", str(bad), "--outdir", str(tmp_path / "r"), "--classifier", str(tmp_path / "c.pth"), "-q"]):
        assert main(argv) == InputError.exit_code
        err = capsys.readouterr().err
        assert f"{bad}: {words}" in err and "Traceback" not in err


def test_os_errors_become_one_line_naming_path_and_cause(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import virnucpro.prepare as prepare

    def full(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write() raises it: no file name

    monkeypatch.setattr(prepare, "prepare", full)
    assert main(["prepare", str(tmp_path / "x.fa"), "--outdir", str(tmp_path / "o"), "-q"]) == StorageError.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'o'}: No space left on device (ENOSPC)" in err
    exc = OSError(errno.EROFS, os.strerror(errno.EROFS), "/mnt/ro/out/reads.tsv")
    assert str(StorageError.from_os_error(exc)) == "/mnt/ro/out/reads.tsv: Read-only file system (EROFS)"
    (tmp_path / "f").write_text("")
    exc = NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(tmp_path / "f" / "out"))
    assert str(StorageError.from_os_error(exc)) == f"{tmp_path / 'f'}: is a file, but a folder is needed here ({tmp_path / 'f' / 'out'})"


def test_atomic_writers_remove_their_temp_files_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from virnucpro.atomic import TMP_MARK, atomic_group, atomic_text

    (tmp_path / "b.txt").write_text("old b\n")
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if "c.txt" + TMP_MARK in os.readlink(f"/proc/self/fd/{fd}"):  # the disk fills up on the last file
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError) as info:
        with atomic_text(tmp_path / "c.txt") as out:
            out.write("new\n")
    assert info.value.filename == str(tmp_path / "c.txt")
    with pytest.raises(OSError):
        with atomic_group() as group:
            group.text(tmp_path / "a.txt").write("new a\n")
            group.text(tmp_path / "b.txt").write("new b\n")
            group.text(tmp_path / "c.txt").write("new c\n")
    # all or nothing: no new file, the old one untouched, no temp file left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt"] and (tmp_path / "b.txt").read_text() == "old b\n"
    assert not [p for p in tmp_path.iterdir() if TMP_MARK in p.name]


# --------------------------------------------------------------------------------------------------------------------
# packaging


def test_license_is_an_spdx_expression() -> None:
    data = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert data["project"]["license"] == "MIT"  # the table form {text = ...} is deprecated by setuptools
    assert all((Path(__file__).parents[1] / f).is_file() for f in data["project"]["license-files"])
    assert any(re.fullmatch(r"setuptools>=(\d+)", r) and int(re.fullmatch(r"setuptools>=(\d+)", r).group(1)) >= 77
               for r in data["build-system"]["requires"])  # the first setuptools that reads SPDX license strings


def test_precision_choices_agree_between_cli_device_and_pipeline_schema() -> None:
    """The CLI lists precisions without importing torch (fast --help); the list must stay the device module's."""
    import json

    from virnucpro import cli, device

    assert cli.PRECISIONS == ("auto", *device.PRECISIONS)
    schema = json.loads((Path(__file__).resolve().parents[1] / "nextflow_schema.json").read_text())
    enums = [
        prop["enum"]
        for group in schema["$defs"].values()
        for name, prop in group.get("properties", {}).items()
        if name == "precision"
    ]
    assert enums == [list(cli.PRECISIONS)]


def test_sigterm_while_a_log_line_is_written_still_stops_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM arriving inside a log handler's flush must not be swallowed by logging (which catches Exception,
    prints '--- Logging error ---' and goes on): the run has to stop with 143 as it would anywhere else."""
    import io
    import logging
    import os
    import signal

    from virnucpro import cli

    class SignalOnFlush(io.StringIO):
        def flush(self) -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # delivered here, inside Handler.emit → flush

    previous = signal.signal(signal.SIGTERM, cli._on_sigterm)
    handler = logging.StreamHandler(SignalOnFlush())
    logger = logging.getLogger("virnucpro.test-sigterm")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with pytest.raises(Interrupted) as caught:
            logger.warning("a progress line")
        assert caught.value.exit_code == 143
    finally:
        logger.removeHandler(handler)
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_inside_a_finaliser_is_delivered_again() -> None:
    """Garbage collection runs finalisers and weakref callbacks at any moment, and Python ignores every exception
    raised in them: a SIGTERM handled there must be sent again and stop the run at the next ordinary line."""
    import os
    import signal
    import sys
    import time

    from virnucpro import cli

    class SignalOnDelete:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # delivered inside __del__: the handler's exception is unraisable

    previous_signal, previous_hook = signal.getsignal(signal.SIGTERM), sys.unraisablehook
    cli._install_stop_handling()
    try:
        with pytest.raises(Interrupted):
            victim = SignalOnDelete()
            del victim
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # ordinary code after the finaliser: the re-sent signal lands here
                time.sleep(0.01)
    finally:
        signal.signal(signal.SIGTERM, previous_signal)
        sys.unraisablehook = previous_hook


@pytest.mark.parametrize("index", ["", "https://download.pytorch.org/whl/cpu"])
def test_make_install_takes_torch_from_the_index_given(tmp_path: Path, index: str) -> None:
    """``make demo TORCH_INDEX_URL=…`` installs torch from that index (a machine without a GPU: the CPU wheels, not
    the CUDA build); unset, pip's own configuration decides, as before (offline mirrors keep working)."""
    import shutil
    import subprocess

    root = Path(__file__).parents[1]
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(root / name, tmp_path / name)
    argv = ["make", "-n", "demo", "VENV=v"] + ([f"TORCH_INDEX_URL={index}"] if index else [])
    plan = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    torch_lines = [line for line in plan.splitlines() if "pip install" in line and "torch==" in line]
    assert len(torch_lines) == 1, plan
    if index:
        assert torch_lines[0].split("torch==")[1].split()[1:] == ["--index-url", index]
    else:
        assert "index-url" not in plan
    assert "v/bin/virnucpro run" in plan  # the demo itself still follows the install
    readme = (root / "README.md").read_text()
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in readme
