"""Progress bars on stderr that stay quiet in pipelines: off when stderr is not a terminal or ``--quiet`` is given."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def progress_bar(*, desc: str, unit: str, total: int | None = None, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar (usable as a context manager) that is disabled unless enabled and attached to a TTY."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        dynamic_ncols=True,
        disable=not (enabled and sys.stderr.isatty()),
        file=sys.stderr,
        **kwargs,
    )
