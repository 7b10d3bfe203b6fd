"""The streaming engine: chunked reading, parallel tokenisation with bounded look-ahead, ordered background writing,
the growing HDF5 writer, host-only mode, and the fast tokenisers (equal to the plain ones)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DNABERT_DIR, ESM_PT, expected, golden_in_order
from virnucpro.embed import load_embedder
from virnucpro.engine.batching import TokenChunk, pad_rows, plan_batches
from virnucpro.engine.stream import Prefetch, read_chunks
from virnucpro.errors import InputError, NumericError
from virnucpro.h5io import MatrixReader, MatrixWriter, read_matrix


def test_token_chunk_and_padding_from_flat_tokens() -> None:
    tokens = [np.array([1, 5, 6, 2]), np.array([1, 2]), np.array([1, 7, 8, 9, 10, 2])]
    chunk = TokenChunk.of(10, ["a", "b", "c"], tokens)
    assert chunk.lengths.tolist() == [4, 2, 6] and chunk.flat.dtype == np.int32
    assert all(np.array_equal(chunk.tokens(i), t) for i, t in enumerate(tokens))
    ids, mask = pad_rows(chunk, np.array([2, 0]), pad_id=3)
    assert ids.tolist() == [[1, 7, 8, 9, 10, 2], [1, 5, 6, 2, 3, 3]]
    assert mask.tolist() == [[True] * 6, [True] * 4 + [False] * 2]
    ids, mask = pad_rows(chunk, np.array([1]), pad_id=0, pad_to=4)
    assert ids.tolist() == [[1, 2, 0, 0]] and mask.sum() == 2
    assert [b.tolist() for b in plan_batches(chunk.lengths, 8)] == [[2], [0, 1]]


def test_protein_tokenizer_matches_the_alphabet_lookup() -> None:
    from virnucpro.models.esm import ALPHABET, CLS, EOS, UNK, tokenize_proteins

    def one_by_one(seq: str) -> list[int]:
        return [CLS] + [ALPHABET.index(c) if c in ALPHABET and len(c) == 1 else UNK for c in seq] + [EOS]

    rng = np.random.default_rng(3)
    seqs = ["".join(rng.choice(list("LAGVSERTIDPKQNFYMHWCXBUZO"), size=int(n))) for n in rng.integers(0, 300, 200)]
    seqs += ["", "M*K", "mk", "MKé", "A" * 1100]
    got = tokenize_proteins([f"p{i}" for i in range(len(seqs))], seqs)
    assert len(got) == len(seqs)
    for seq, tokens in zip(seqs, got):
        assert tokens.dtype == np.int32 and tokens.tolist() == one_by_one(seq), seq[:20]
    assert tokenize_proteins([], []) == []


def test_dna_tokenizer_fast_path_equals_the_full_tokenizer(tmp_path: Path) -> None:
    """Without the Whitespace pre-tokenizer (letters only) the ids are identical; other input takes the full path."""
    from virnucpro.bench import synthetic_read, train_dna_tokenizer
    from virnucpro.models.dnabert import DnaTokenizer

    rng = np.random.default_rng(5)
    reads = [synthetic_read(int(n), rng) for n in rng.integers(50, 600, 300)]
    odd = ["acgtnACGTN" * 9, "ACG-TTA", "", "AC GT", "ACGT_NN", "ÄCGT", "ACGT\tACGT", "N" * 40]
    for path, vocab in ((DNABERT_DIR / "tokenizer.json", 4096), (train_dna_tokenizer(reads[:100], 512, tmp_path), 512)):
        tokenizer = DnaTokenizer(path, vocab)
        assert tokenizer.whole is not None and tokenizer.whole is not tokenizer.tokenizer
        seqs = reads + odd
        want = [e.ids for e in tokenizer.tokenizer.encode_batch([s.upper() for s in seqs])]
        got = tokenizer([str(i) for i in range(len(seqs))], seqs)
        assert [g.tolist() for g in got] == want


def test_prefetch_is_ordered_parallel_and_bounded() -> None:
    read = 0
    lead = 0
    consumed = 0
    lock = threading.Lock()
    active, most_active = 0, 0

    def source():
        nonlocal read
        for i in range(40):
            read += 1
            yield i

    def work(i: int) -> int:
        nonlocal active, most_active
        with lock:
            active += 1
            most_active = max(most_active, active)
        time.sleep(0.01 if i % 3 else 0.03)  # uneven work: results must still come back in order
        with lock:
            active -= 1
        return i * i

    out = []
    with Prefetch(source(), work, workers=3, depth=4) as prepared:
        for value in prepared:
            consumed += 1
            lead = max(lead, read - consumed)
            out.append(value)
            time.sleep(0.005)
    assert out == [i * i for i in range(40)]
    assert most_active >= 2  # chunks really are prepared in parallel
    assert lead <= 4 + 1  # never more than `depth` items ahead (plus the one the feeder holds)


def test_prefetch_raises_errors_in_order_and_close_stops_the_feeder() -> None:
    def source():
        yield from range(5)
        raise InputError("bad record 5")

    with Prefetch(source(), lambda i: i, workers=2) as prepared:
        got = []
        with pytest.raises(InputError, match="bad record 5"):
            for value in prepared:
                got.append(value)
    assert got == [0, 1, 2, 3, 4]

    endless = Prefetch(iter(range(10**9)), lambda i: i, workers=2, depth=2)
    assert next(iter(endless)) == 0
    endless.close()  # returns although the source is endless
    assert not endless._feeder.is_alive()


def test_read_chunks(tmp_path: Path) -> None:
    fa = tmp_path / "x.fa"
    fa.write_text("".join(f">r{i} d\nACGT\n" for i in range(10)))
    chunks = list(read_chunks(fa, 4))
    assert [(start, ids) for start, ids, _ in chunks] == [(0, ["r0", "r1", "r2", "r3"]), (4, ["r4", "r5", "r6", "r7"]), (8, ["r8", "r9"])]


def test_growing_matrix_writer(tmp_path: Path) -> None:
    path = tmp_path / "g.h5"
    with MatrixWriter(path, None, 3, attrs={"kind": "dna"}) as writer:
        writer.append(["a", "b"], np.ones((2, 3)))
        writer.append([], np.zeros((0, 3)))
        writer.append(["c", "d", "e"], np.full((3, 3), 2.0), valid=np.array([True, False, True]))
        with pytest.raises(NumericError, match="'f'"):
            writer.append(["f"], np.array([[1.0, np.nan, 0.0]]))
        with pytest.raises(RuntimeError):
            writer.write_rows([0], np.ones((1, 3)))
        writer.commit()
    with MatrixReader(path) as reader:
        assert reader.ids == ["a", "b", "c", "d", "e"] and reader.attrs["rows"] == 5 and reader.attrs["kind"] == "dna"
        assert reader.valid.tolist() == [True, True, True, False, True]
        assert reader.rows(slice(None)).tolist() == [[1] * 3, [1] * 3, [2] * 3, [0] * 3, [2] * 3]
    empty = MatrixWriter(tmp_path / "e.h5", None, 4)
    empty.commit()
    table = read_matrix(tmp_path / "e.h5")
    assert table.ids == [] and table.matrix.shape == (0, 4)


@pytest.mark.parametrize("kind,model,name,gold", [
    ("dna", DNABERT_DIR, "identified_nucleotide.fa", "dnabert"),
    ("protein", ESM_PT, "identified_protein.faa", "esm"),
])
def test_many_small_chunks_and_workers_keep_input_order_and_values(kind, model, name, gold, tmp_path: Path) -> None:
    """Chunks of 7 sequences, 2 tokenising threads, small batches: the file is identical in order and value."""
    embedder = load_embedder(kind, str(model), device="cpu", precision="fp32", workers=2, chunk_size=7)
    out = tmp_path / "o.h5"
    stats = embedder.embed_fasta(expected(500) / name, out, tokens_per_batch=700, progress=False)
    table = read_matrix(out)
    ids = [line[1:].split()[0] for line in (expected(500) / name).read_text().splitlines() if line.startswith(">")]
    assert table.ids == ids and stats["sequences"] == len(ids) and stats["workers"] == 2
    assert stats["batches"] >= len(ids) // 7
    assert np.abs(table.matrix - golden_in_order(gold, 500, ids)).max() <= 1e-4


def test_bad_record_mid_file_leaves_nothing(tmp_path: Path) -> None:
    fa = tmp_path / "bad.fa"
    fa.write_bytes(b"".join(b">r%d\nACGTACGTAC\n" % i for i in range(50)) + b">x\nAC\x00GT\n")
    embedder = load_embedder("dna", str(DNABERT_DIR), device="cpu", chunk_size=8)
    with pytest.raises(InputError, match="binary data"):
        embedder.embed_fasta(fa, tmp_path / "o.h5", progress=False)
    assert list(tmp_path.iterdir()) == [fa]


def test_nan_in_a_later_chunk_is_refused_and_nothing_written(tmp_path: Path) -> None:
    embedder = load_embedder("dna", str(DNABERT_DIR), device="cpu", chunk_size=5)
    real_step = embedder.step
    calls = 0

    def step(ids: torch.Tensor, mask: torch.Tensor, padded: bool = True) -> torch.Tensor:
        nonlocal calls
        calls += 1
        means = real_step(ids, mask)
        return means * float("nan") if calls == 4 else means

    embedder.step = step  # type: ignore[method-assign]
    with pytest.raises(NumericError):
        embedder.embed_fasta(expected(300) / "identified_nucleotide.fa", tmp_path / "o.h5", tokens_per_batch=400, progress=False)
    assert not list(tmp_path.iterdir())


def test_host_only_runs_the_engine_without_the_model(tmp_path: Path) -> None:
    embedder = load_embedder("protein", str(ESM_PT), device="cpu", chunk_size=16)
    embedder.host_only = True
    embedder.encoder.module.forward = None  # the model must not be called at all
    out = tmp_path / "h.h5"
    stats = embedder.embed_fasta(expected(300) / "identified_protein.faa", out, progress=False)
    table = read_matrix(out)
    assert stats["host_only"] is True and stats["sequences"] == len(table.ids) > 16
    assert not table.matrix.any() and table.matrix.shape[1] == 64
    fasta = (expected(300) / "identified_protein.faa").read_text().splitlines()
    assert table.ids == [line[1:].split()[0] for line in fasta if line.startswith(">")]
