"""Where model files come from: Hugging Face snapshots, fair-esm's public URLs, the original classifier files.

Downloads are the only network access of the project. Each lands under a temporary name and is renamed when
complete, so an interrupted download never leaves a file that looks finished; ``models download`` then writes a
``checksums.sha256`` (``sha256sum -c`` format). That list is what makes a model folder reusable: ``models verify``
checks every file a run needs against it (the pipeline's ``--models_store`` is used only when this passes), and a
second ``models download`` into the same folder verifies what is there and fetches only what is missing or differs. Hashing goes through
:func:`virnucpro.checksum.file_sha256`, which records each large file's digest with its size and mtime in a hidden
sidecar: every later task reuses that digest instead of re-hashing a 5.7 GB checkpoint, and only while size and mtime
still match (docs/precision.md, "Model loading"). Network problems become one
:class:`~virnucpro.errors.ModelError` line, never a traceback.

Never downloaded: the DNABERT-S remote-code ``*.py`` files. The architecture is our own (``models/dnabert.py``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from virnucpro.atomic import temp_name
from virnucpro.checksum import file_sha256
from virnucpro.errors import ModelError

log = logging.getLogger("virnucpro")

DNABERT_S_REPO = "zhihan1996/DNABERT-S"
#: Commit of ``zhihan1996/DNABERT-S`` to fetch. Not learnable offline when this was written: ``None`` means the
#: repository's current ``main``; the resolved commit is part of the snapshot path and the file checksums are written
#: to ``checksums.sha256``, so a run stays traceable. Set a 40-hex commit here to pin it.
DNABERT_S_REVISION: str | None = None
#: Only what our loader reads: configuration, tokenizer, weights. Never ``*.py`` (remote code is not executed).
HF_ALLOW_PATTERNS = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "model.safetensors",
    "pytorch_model.bin",
)

DEFAULT_ESM_NAME = "esm2_t36_3B_UR50D"
FAIR_ESM_MODEL_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"
FAIR_ESM_REGRESSION_URL = "https://dl.fbaipublicfiles.com/fair-esm/regression/{name}-contact-regression.pt"
#: The original repository ships its trained classifiers at the top level (README: ``prediction.py ... 500_model.pth``);
#: raw.githubusercontent.com serves them from the default branch. If the files ever move to Git LFS this URL would
#: return a pointer file; the loader then refuses it as not a checkpoint.
CLASSIFIER_URL = "https://raw.githubusercontent.com/Li-Jing-1997/VirNucPro/main/{length}_model.pth"
CHUNK_LENGTHS = (300, 500)
CHECKSUMS_NAME = "checksums.sha256"


def is_offline() -> bool:
    """True when the environment asks for no network (Hugging Face's own switches)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def fetch_url(url: str, dest: Path, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` through a temporary name; a failure leaves nothing behind and says why in one line."""
    dest = Path(dest)
    if is_offline():
        raise ModelError(f"{dest}: missing, and downloads are disabled (HF_HUB_OFFLINE set); fetch {url} by hand")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(dest)
    log.info("downloading %s → %s", url, dest)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, length=1 << 22)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        Path(tmp).unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise ModelError(f"cannot download {url}: {reason}") from None
    return dest


def hf_snapshot(repo_id: str, *, revision: str | None = None, local_dir: Path | None = None) -> Path:
    """Fetch (or find in the cache) the config, tokenizer and weights of a Hugging Face model repository.

    ``local_files_only`` when offline, so a pre-populated cache works on air-gapped nodes.
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - dependency of the package
        raise ModelError("huggingface_hub is not installed; pass a local DNABERT-S folder instead") from None
    try:
        path = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=list(HF_ALLOW_PATTERNS),
            local_dir=str(local_dir) if local_dir else None,
            local_files_only=is_offline(),
        )
    except Exception as exc:  # huggingface_hub raises many types (HTTP, offline, not found)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"cannot fetch {repo_id} from Hugging Face: {first}") from None
    return Path(path)


def esm_checkpoint_path(name: str) -> Path:
    """Where fair-esm keeps ``name``: ``$TORCH_HOME/hub/checkpoints/<name>.pt`` (torch.hub's directory)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / f"{name}.pt"


def fetch_esm(name: str, dest: Path) -> Path:
    """Download a fair-esm checkpoint and its contact-regression file next to it (fair-esm expects the pair)."""
    if not dest.is_file():
        fetch_url(FAIR_ESM_MODEL_URL.format(name=name), dest)
    regression = dest.with_name(f"{dest.stem}-contact-regression.pt")
    if not regression.is_file():
        try:
            fetch_url(FAIR_ESM_REGRESSION_URL.format(name=name), regression)
        except ModelError as exc:  # not needed for embeddings: worth a warning only
            log.warning("%s", exc)
    return dest


def write_checksums(folder: Path) -> Path:
    """``sha256sum``-format list of every file under ``folder`` (sorted, relative paths), written atomically."""
    folder = Path(folder)
    target = folder / CHECKSUMS_NAME
    lines = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel == CHECKSUMS_NAME or path.name.startswith(".") or "/." in f"/{rel}":
            continue  # our own list, checksum sidecars and the HF cache metadata
        lines.append(f"{file_sha256(path)}  {rel}\n")
    tmp = temp_name(target)
    Path(tmp).write_text("".join(lines))
    os.replace(tmp, target)
    return target


def read_checksums(folder: Path) -> dict[str, str]:
    """``checksums.sha256`` of ``folder`` as {relative path: digest}; a missing or malformed list is a ModelError."""
    target = Path(folder) / CHECKSUMS_NAME
    try:
        text = target.read_text()
    except OSError as exc:
        raise ModelError(f"{target}: cannot read the checksum list ({exc.strerror or exc}); "
                         f"run `virnucpro models download --dir {folder}`") from None
    listed = {}
    for number, line in enumerate(text.splitlines(), 1):
        digest, sep, rel = line.partition("  ")
        if not line.strip():
            continue
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not rel:
            raise ModelError(f"{target}: line {number} is not '<sha256>  <path>'")
        listed[rel] = digest
    return listed


def required_files(chunk_lengths: list[int], esm: bool) -> list[str]:
    """Files (relative to a models folder) a run needs: DNABERT-S config and tokenizer, ESM-2, the classifiers.

    DNABERT-S weights come as ``model.safetensors`` or ``pytorch_model.bin``; :func:`verify_models` asks for one.
    """
    names = ["dnabert-s/config.json", "dnabert-s/tokenizer.json"]
    if esm:
        names.append(f"{DEFAULT_ESM_NAME}.pt")
    names += [f"{length}_model.pth" for length in chunk_lengths]
    return names


def _problems(folder: Path, listed: dict[str, str], chunk_lengths: list[int], esm: bool) -> list[str]:
    """One line per needed file that is missing, unlisted or differs from its recorded digest (empty: all good)."""
    problems = []
    weights = [w for w in ("dnabert-s/model.safetensors", "dnabert-s/pytorch_model.bin") if w in listed]
    needed = required_files(chunk_lengths, esm) + (weights or ["dnabert-s/model.safetensors"])
    for rel in needed:
        path = folder / rel
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif rel not in listed:
            problems.append(f"{path}: not listed in {CHECKSUMS_NAME}")
    for rel, digest in listed.items():
        path = folder / rel
        if path.is_file() and file_sha256(path) != digest:
            problems.append(f"{path}: sha256 differs from {CHECKSUMS_NAME} (changed or incomplete)")
    return problems


def verify_models(folder: Path, chunk_lengths: list[int], esm: bool = True) -> int:
    """Check every file a run needs against ``checksums.sha256``; raises one ModelError naming each bad file.

    Returns the number of files checked. Digests of large files come from :func:`file_sha256`'s size+mtime cache,
    so verifying an unchanged folder again costs a stat per file, not a re-hash of the 5.7 GB checkpoint.
    """
    folder = Path(folder)
    listed = read_checksums(folder)
    problems = _problems(folder, listed, chunk_lengths, esm)
    if problems:
        raise ModelError("; ".join(problems) + f" -- run `virnucpro models download --dir {folder}` to repair it")
    return len(listed)


def _lengths(args: argparse.Namespace) -> list[int]:
    return [args.chunk_length] if getattr(args, "chunk_length", None) else list(CHUNK_LENGTHS)


def cli_verify(args: argparse.Namespace) -> int:
    """``virnucpro models verify``: exit 0 when every needed file matches ``checksums.sha256``, else 3 (ModelError)."""
    count = verify_models(Path(args.dir), _lengths(args), esm=not getattr(args, "skip_esm", False))
    log.info("%s: %d files match %s", args.dir, count, CHECKSUMS_NAME)
    return 0


def _drop_mismatches(folder: Path) -> dict[str, str]:
    """Delete files whose digest differs from the folder's list, so they are fetched again; returns the list."""
    if not (folder / CHECKSUMS_NAME).is_file():
        return {}
    listed = read_checksums(folder)
    for rel, digest in listed.items():
        path = folder / rel
        if path.is_file() and file_sha256(path) != digest:
            log.warning("%s: sha256 differs from %s; downloading it again", path, CHECKSUMS_NAME)
            path.unlink()
    return listed


def cli_download(args: argparse.Namespace) -> int:
    """``virnucpro models download``: DNABERT-S, ESM-2 3B and the classifiers into ``--dir``, then checksums."""
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    listed = _drop_mismatches(folder)
    dna_files = [r for r in listed if r.startswith("dnabert-s/")]
    if {"dnabert-s/config.json", "dnabert-s/tokenizer.json"} <= set(dna_files) and all((folder / r).is_file() for r in dna_files):
        log.info("DNABERT-S in %s matches %s; not fetched again", folder / "dnabert-s", CHECKSUMS_NAME)
    else:
        dnabert = hf_snapshot(DNABERT_S_REPO, revision=DNABERT_S_REVISION, local_dir=folder / "dnabert-s")
        log.info("DNABERT-S in %s", dnabert)
    esm = not getattr(args, "skip_esm", False)
    if esm:
        fetch_esm(DEFAULT_ESM_NAME, folder / f"{DEFAULT_ESM_NAME}.pt")
    lengths = _lengths(args)
    for length in lengths:
        dest = folder / f"{length}_model.pth"
        if not dest.is_file():
            fetch_url(CLASSIFIER_URL.format(length=length), dest)
    sums = write_checksums(folder)
    verify_models(folder, lengths, esm=esm)
    log.info("models in %s; checksums in %s", folder, sums)
    return 0
