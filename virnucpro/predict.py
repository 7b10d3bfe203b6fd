"""Merge and predict stages: join DNABERT-S and ESM-2 rows by id (DNABERT part first), score with the classifier.

The original concatenates two lists and trusts that their orders agree, silently misaligning rows when they do not;
here the join is by id and an id present on one side only is an error that names it. Scores are written the way the
original writes them (``str`` of numpy float32: the shortest form that round-trips), so tables are byte-comparable.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from virnucpro.atomic import atomic_text
from virnucpro.errors import InputError, NumericError
from virnucpro.h5io import MatrixReader, MatrixWriter
from virnucpro.models.classifier import MLPClassifier, check_classifier, load_classifier
from virnucpro.shards_check import KIND_FEATURES, check_kind, check_pair, frames_tag

log = logging.getLogger("virnucpro.predict")

FRAMES_HEADER = ("Sequence_ID", "Prediction", "score1", "score2")
MERGE_BLOCK_ROWS = 16384


def _duplicates(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    return [i for i in ids if i in seen or seen.add(i)]  # type: ignore[func-returns-value]


def merge_features(dna: Path, protein: Path, output: Path) -> Path:
    """Write ``output`` with ``features`` = [DNABERT-S | ESM-2] per id, rows in DNABERT-S order.

    Rows an embedder marked invalid (a sequence too large for the device) are left out, with a warning; summarize
    then gives their reads a status instead of scores.
    """
    with MatrixReader(dna, "embeddings") as d, MatrixReader(protein, "embeddings") as p:
        shard = check_pair(dna, d.attrs, protein, p.attrs)
        for path, ids in ((dna, d.ids), (protein, p.ids)):
            dup = _duplicates(ids)
            if dup:
                raise InputError(f"{path}: duplicate id {dup[0]!r} ({len(dup)} duplicate(s))")
        position = {sid: i for i, sid in enumerate(p.ids)}
        only_dna = [sid for sid in d.ids if sid not in position]
        dna_ids = set(d.ids)
        only_protein = [sid for sid in p.ids if sid not in dna_ids]
        if only_dna or only_protein:
            parts = []
            if only_dna:
                parts.append(f"{len(only_dna)} id(s) only in {dna}, e.g. {only_dna[0]!r}")
            if only_protein:
                parts.append(f"{len(only_protein)} id(s) only in {protein}, e.g. {only_protein[0]!r}")
            raise InputError("cannot merge: " + "; ".join(parts))
        keep = d.valid & p.valid[[position[i] for i in d.ids]] if d.ids else d.valid
        dropped = [sid for sid, k in zip(d.ids, keep) if not k]
        if dropped:
            log.warning("%d frame(s) could not be embedded and are left out of %s, e.g. %r", len(dropped), output, dropped[0])
        attrs = {
            "dna_model": d.attrs.get("model_name", ""),
            "dna_model_sha256": d.attrs.get("model_sha256", ""),
            "protein_model": p.attrs.get("model_name", ""),
            "protein_model_sha256": p.attrs.get("model_sha256", ""),
            "dna_dim": d.dim,
            "protein_dim": p.dim,
            "precision": f"{d.attrs.get('precision', '')}/{p.attrs.get('precision', '')}",
            "frames_not_embedded": len(dropped),
            "kind": KIND_FEATURES,
            **({"shard": shard} if shard else {}),
            "nuc_sha256": d.attrs.get("source_sha256", ""),
            "prot_sha256": p.attrs.get("source_sha256", ""),
        }
        out_ids = [sid for sid, k in zip(d.ids, keep) if k]
        with MatrixWriter(output, out_ids, d.dim + p.dim, dataset="features", attrs=attrs) as writer:
            written = 0
            for start, ids, block in d.blocks(MERGE_BLOCK_ROWS):
                sel = keep[start : start + len(ids)]
                kept_ids = [i for i, k in zip(ids, sel) if k]
                other = p.rows(np.fromiter((position[i] for i in kept_ids), dtype=np.int64, count=len(kept_ids)))
                writer.write_rows(np.arange(written, written + len(kept_ids)), np.hstack([block[sel], other]))
                written += len(kept_ids)
            return writer.commit()


def format_score(value: np.float32) -> str:
    """The original's text form of a score: ``str()`` of a numpy float32."""
    return str(np.float32(value))


def score_features(model: MLPClassifier, features: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Softmax probabilities [N, 2] in float32 (eval mode: BatchNorm running statistics, dropout off)."""
    with torch.inference_mode():
        logits = model.to(device)(torch.from_numpy(features).to(device))
        return torch.softmax(logits, dim=1).float().cpu().numpy()


def open_features(features: Path) -> MatrixReader:
    """Open a features file, refusing (naming its shard) an embedding file or anything else handed in its place."""
    reader = MatrixReader(features)
    try:
        check_kind(features, reader.attrs, KIND_FEATURES)
        if reader.dataset != "features":
            raise InputError(f"{features}: not a features file (needs datasets 'ids' and 'features'; this is an embedding file)")
    except InputError:
        reader.close()
        raise
    return reader


def iter_scored(features: Path, classifier: Path, batch_size: int = 256, device: str = "cpu") -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(frame_id, probabilities)`` in feature-file order."""
    with open_features(features) as reader:
        yield from _score_reader(reader, classifier, batch_size, device)


def _score_reader(reader: MatrixReader, classifier: Path, batch_size: int, device: str) -> Iterator[tuple[str, np.ndarray]]:
    features = reader.path
    model = load_classifier(classifier)
    if reader.dim != model.input_dim:
        raise InputError(
            f"{features}: features have {reader.dim} columns but {classifier} expects {model.input_dim}"
            " (wrong models for this classifier?)"
        )
    for _, ids, block in reader.blocks(max(batch_size, 1) * 64):
        for start in range(0, len(ids), batch_size):
            probs = score_features(model, block[start : start + batch_size], device)
            bad = ~np.isfinite(probs).all(axis=1)
            if bad.any():
                names = [ids[start + i] for i in np.flatnonzero(bad)[:5]]
                raise NumericError(f"{features}: non-finite scores for {int(bad.sum())} frame(s), e.g. {names}")
            yield from zip(ids[start : start + batch_size], probs)


def frame_row(frame_id: str, probs: np.ndarray) -> str:
    """One prediction_results.txt row (without newline)."""
    label = "virus" if probs[1] > probs[0] else "others"
    return f"{frame_id}\t{label}\t{format_score(probs[0])}\t{format_score(probs[1])}"


def predict_frames(features: Path, classifier: Path, output: Path, batch_size: int = 256, device: str = "cpu") -> int:
    """Write the per-frame table (original ``prediction_results.txt`` format); returns the number of rows.

    Features of a prepared shard put the shard's identity line first (:func:`virnucpro.shards_check.frames_tag`),
    so summarize can tell which shard a table holds whatever its file name.
    """
    n = 0
    with open_features(features) as reader, atomic_text(output) as out:
        tag = frames_tag(reader.attrs, len(reader.ids))
        if tag:
            out.write(tag + "\n")
        out.write("\t".join(FRAMES_HEADER) + "\n")
        for frame_id, probs in _score_reader(reader, classifier, batch_size, device):
            out.write(frame_row(frame_id, probs) + "\n")
            n += 1
    log.info("scored %d frames → %s", n, output)
    return n


def cli_merge(args: argparse.Namespace) -> int:
    """``virnucpro merge``."""
    merge_features(args.dna, args.protein, args.output)
    return 0


def cli_predict(args: argparse.Namespace) -> int:
    """``virnucpro predict``."""
    if args.batch_size < 1:
        raise InputError("--batch-size must be positive")
    check_classifier(args.classifier, args.chunk_length, args.allow_chunk_mismatch)
    predict_frames(args.features, args.classifier, args.output, args.batch_size, args.device)
    return 0
