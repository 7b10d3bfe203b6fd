"""Progress when stderr is not a terminal: one log line per interval with done/total, rate and ETA (never silence)."""

from __future__ import annotations

import logging

import pytest

import virnucpro.progress as progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr("tqdm.std.time", fake)  # tqdm reads its clock from here when a bar is made
    return fake


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "virnucpro.progress"]


def test_redirected_stderr_gets_a_line_per_interval(clock: FakeClock, caplog: pytest.LogCaptureFixture, monkeypatch) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    caplog.set_level(logging.INFO, logger="virnucpro")
    with progress.progress_bar(desc="embed-dna", unit="seq", total=1000, interval=60) as bar:
        assert isinstance(bar, progress.LoggedProgress) and not bar.disable
        for _ in range(10):  # 10 updates of 50 sequences, 20 s apart: 200 s in all
            clock.now += 20
            bar.update(50)
            bar.set_postfix_str("1,234 tok/s", refresh=False)
        assert _messages(caplog) == [
            "embed-dna: 150/1,000 seq (15.0%), 2.5 seq/s, ETA 05:40 [1,234 tok/s]",
            "embed-dna: 300/1,000 seq (30.0%), 2.5 seq/s, ETA 04:40 [1,234 tok/s]",
            "embed-dna: 450/1,000 seq (45.0%), 2.5 seq/s, ETA 03:40 [1,234 tok/s]",
        ]
        clock.now += 20
        bar.update(500)
    assert _messages(caplog)[-1] == "embed-dna: 1,000/1,000 seq (100.0%), 4.5 seq/s, done in 03:40 [1,234 tok/s]"


def test_short_stage_and_unknown_total(clock: FakeClock, caplog: pytest.LogCaptureFixture, monkeypatch) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    caplog.set_level(logging.INFO, logger="virnucpro")
    with progress.progress_bar(desc="prepare", unit="read", total=10, interval=60) as bar:
        clock.now += 1
        bar.update(10)
    assert _messages(caplog) == []  # finished within one interval: no progress noise
    with progress.progress_bar(desc="prepare", unit="read", interval=30) as bar:
        clock.now += 31
        bar.update(3100)
    assert _messages(caplog) == ["prepare: 3,100 read, 100.0 read/s"]


def test_quiet_and_terminal(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    quiet = progress.progress_bar(desc="x", unit="seq", total=3, enabled=False)
    assert quiet.disable and not isinstance(quiet, progress.LoggedProgress)
    quiet.close()
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    live = progress.progress_bar(desc="x", unit="seq", total=3)
    assert not live.disable and not isinstance(live, progress.LoggedProgress)
    live.close()


def test_embedding_into_a_log_file_reports_done_total_rate_eta(tmp_path, caplog: pytest.LogCaptureFixture, monkeypatch) -> None:
    """What a cluster log shows during `run`'s embedding stage (the shard's frame count is the total)."""
    from conftest import DNABERT_DIR, expected
    from virnucpro.embed import load_embedder

    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)  # a line per update instead of every 30 s
    caplog.set_level(logging.INFO, logger="virnucpro")
    embedder = load_embedder("dna", str(DNABERT_DIR), device="cpu", precision="fp32")
    embedder.embed_fasta(expected(500) / "identified_nucleotide.fa", tmp_path / "d.h5", tokens_per_batch=2000, total=153)
    lines = _messages(caplog)
    assert lines and all(line.startswith("embed-dna: ") and "/153 seq (" in line and " seq/s" in line for line in lines)
    assert any(", ETA " in line for line in lines[:-1]) and lines[-1].startswith("embed-dna: 153/153 seq (100.0%)")
