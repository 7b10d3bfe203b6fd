"""The model-side benchmark scripts keep working (tiny settings): they run, and their JSON says what the docs quote.

Speed is not asserted (benchmarks measure it; docs/precision.md records the figures with their hardware).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_esm_load_time_script_times_both_forms_and_the_first_hash(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "esm_load_time.py"), "--shape", "8M", "--repeats", "1",
         "--precision", "fp32", "--workdir", str(tmp_path / "w"), "--output", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["shape"]["name"] == "8M" and report["sha256_first_hash"]["bytes"] > 0
    forms = sorted(Path(load["file"]).suffix for load in report["loads"])
    assert forms == [".pt", ".safetensors"]
    assert all(load["best_s"] > 0 and load["gb_per_s_best"] > 0 for load in report["loads"])


def test_carried_genomes_are_the_generators_output_and_look_like_real_data(tmp_path: Path) -> None:
    """benchmarks/data/synthetic_genomes.fa.gz: reproducible from its script, and its frames per window and protein
    lengths fall in the band shared/realdata/README.md measures for real 3 kb fragments (virus_3kb / host_3kb)."""
    import gzip

    from virnucpro.fasta import read_fasta
    from virnucpro.prepare import prepare

    carried = ROOT / "benchmarks" / "data" / "synthetic_genomes.fa.gz"
    fresh = tmp_path / "genomes.fa"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "synthetic_genomes.py"), "--output", str(fresh)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert gzip.decompress(carried.read_bytes()) == fresh.read_bytes()
    # (chunk, frames/window of virus_3kb.fa and host_3kb.fa, mean protein length) from the README's table
    for chunk, (low, high), aa in ((300, (0.87, 1.19), 99), (500, (0.54, 0.78), 166)):
        counts = prepare([carried], tmp_path / f"p{chunk}", chunk, progress=False)["counts"]
        proteins = [len(r.sequence) for p in sorted((tmp_path / f"p{chunk}").glob("*.prot.fa")) for r in read_fasta(p)]
        assert counts["reads"] == 1000 and counts["windows"] == 1000 * (3000 // chunk)
        assert low <= counts["frames"] / counts["windows"] <= high, (chunk, counts)
        assert abs(sum(proteins) / len(proteins) - aa) <= 2, chunk
