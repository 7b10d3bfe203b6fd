"""Progress on stderr: a live bar on a terminal, a log line at a steady interval everywhere else.

Cluster schedulers and ``nohup`` send stderr to a file, where a redrawn bar is noise and no bar at all means minutes
of silence during embedding. So when stderr is not a terminal the same object logs ``done/total, rate, ETA`` every
:data:`LOG_INTERVAL_S` seconds through the ``virnucpro`` logger (which also feeds ``run.log``). ``--quiet`` turns both
off. Callers see one tqdm-compatible object either way.
"""

from __future__ import annotations

import io
import logging
import sys
from typing import Any

from tqdm import tqdm

log = logging.getLogger("virnucpro.progress")

#: Seconds between two progress lines when stderr is not a terminal.
LOG_INTERVAL_S = 30.0


class LoggedProgress(tqdm):
    """tqdm that, instead of redrawing a bar, logs one line per ``interval`` seconds of progress (and a last line
    when it closes, if it ever logged), with done/total, rate and ETA."""

    def __init__(self, *args: Any, interval: float = LOG_INTERVAL_S, **kwargs: Any) -> None:
        self.log_interval = float(interval)
        self._logged_at: float | None = None
        self._logged_n = 0
        kwargs["file"] = io.StringIO()  # tqdm's own output (a newline at close) goes nowhere
        super().__init__(*args, **kwargs)
        self._logged_at = self.start_t

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:  # noqa: ARG002 - tqdm's signature
        if self._logged_at is None:  # the initial refresh inside tqdm.__init__
            return True
        now = self._time()
        closing = self.disable  # tqdm.close() sets disable before its last display()
        if closing and (self._logged_at == self.start_t or self._logged_n == self.n):
            return True  # finished within one interval, or nothing new since the last line
        if not closing and now - self._logged_at < self.log_interval:
            return True
        self._logged_at, self._logged_n = now, self.n
        log.info("%s", self.status_line(now))
        return True

    def status_line(self, now: float | None = None) -> str:
        """``embed-dna: 1,200/5,000 seq (24.0%), 40.0 seq/s, ETA 1:35 [postfix]``."""
        elapsed = max(1e-9, (self._time() if now is None else now) - self.start_t)
        rate = self.n / elapsed
        unit = self.unit
        text = f"{self.desc}: {self.n:,}"
        if self.total:
            text += f"/{self.total:,} {unit} ({100.0 * self.n / self.total:.1f}%)"
        else:
            text += f" {unit}"
        text += f", {rate:,.1f} {unit}/s"
        if self.total and self.n < self.total:
            eta = self.format_interval((self.total - self.n) / rate) if rate > 0 else "unknown"
            text += f", ETA {eta}"
        elif self.total:
            text += f", done in {self.format_interval(elapsed)}"
        if self.postfix:
            text += f" [{str(self.postfix).lstrip(', ')}]"
        return text


def progress_bar(
    *, desc: str, unit: str, total: int | None = None, enabled: bool = True, interval: float | None = None, **kwargs: Any
) -> tqdm:
    """A tqdm-compatible progress object (usable as a context manager).

    A live bar when ``enabled`` and stderr is a terminal; a :class:`LoggedProgress` when ``enabled`` and stderr is
    redirected; disabled (``.disable`` is True, updates cost nothing) when not ``enabled``.
    """
    if enabled and not sys.stderr.isatty():
        return LoggedProgress(
            total=total, desc=desc, unit=unit, interval=LOG_INTERVAL_S if interval is None else interval,
            mininterval=min(1.0, LOG_INTERVAL_S if interval is None else interval), **kwargs,
        )
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        dynamic_ncols=True,
        disable=not enabled,
        file=sys.stderr,
        **kwargs,
    )
