"""A copy of this checkout as a fresh clone of the working tree would hold it: tracked files and new files git does
not ignore, without build outputs (.venv, caches). The GPU script's smoke test and the pipeline mutation check both
run in such a copy, so that nothing outside the repository can make them pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def copy_checkout(root: Path, dest: Path) -> Path:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = root / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest
