"""The command line itself: version, help on every subcommand, errors as one line without traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from virnucpro import __version__
from virnucpro.cli import build_parser, main

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
