"""Resume stamps: an output is reused only when it is complete and a stamp beside it records exactly the inputs
it was made from (shard checksum, model, precision, parameters). The stamp is written after the output is in place,
so a kill between the two leaves an output that is recomputed, never one trusted by mistake."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

from virnucpro.atomic import atomic_text
from virnucpro.h5io import h5_is_complete

log = logging.getLogger("virnucpro.run")


def stamp_path(output: Path) -> Path:
    return output.with_name(output.name + ".stamp.json")


def is_current(output: Path, fingerprint: dict[str, Any], what: str) -> bool:
    """True when ``output`` is complete and was made from exactly ``fingerprint``; logs why it is not."""
    stamp = stamp_path(output)
    if not output.exists():
        return False
    complete = h5_is_complete(output) if output.suffix == ".h5" else True
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        recorded = None
    if complete and recorded == fingerprint:
        return True
    if not complete:
        reason = "incomplete or corrupt file"
    elif recorded is None:
        reason = "no stamp (interrupted before it was confirmed)"
    else:
        changed = sorted(k for k in set(fingerprint) | set(recorded) if fingerprint.get(k) != recorded.get(k))
        reason = f"changed {', '.join(changed)}"
    log.info("recomputing %s %s: %s", what, output.name, reason)
    return False


def write_stamp(output: Path, fingerprint: dict[str, Any]) -> None:
    with atomic_text(stamp_path(output)) as out:
        json.dump(fingerprint, out, sort_keys=True)




def cheap_stage(output: Path, fingerprint: dict[str, Any], what: str, make: Callable[[], object]) -> None:
    """Make ``output`` unless it is current, then stamp it (for stages cheap enough to run in the caller)."""
    if not is_current(output, fingerprint, what):
        make()
        write_stamp(output, fingerprint)


