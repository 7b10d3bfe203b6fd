"""Mutation check of the pipeline tests: apply one wiring mistake at a time to a COPY of the repository, run
tests/pipeline/ there, and report which mistakes the tests catch (JSON on stdout).

    python tests/pipeline/mutations.py [--only NAME ...] [--output results.json]

WHY: a review found the earlier tests caught 3 of 13 deliberate wiring mistakes; this keeps the number measured.
Each mutation is an exact text edit that must apply once (a mutation that no longer applies is reported as such,
never counted as caught). The copy's own `virnucpro` package is the one its tests run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from checkout_copy import copy_checkout  # noqa: E402

#: name → (file, old text, new text, the kind of mistake)
MUTATIONS: dict[str, tuple[str, str, str, str]] = {
    "swapped_emit_predict": (
        "workflows/virnucpro.nf", "PREDICT(MERGE.out.h5,", "PREDICT(EMBED_DNA.out.h5,", "a swapped emit"),
    "swapped_sides_merge": (
        "workflows/virnucpro.nf",
        "MERGE(EMBED_DNA.out.h5.join(EMBED_PROTEIN.out.h5,", "MERGE(EMBED_PROTEIN.out.h5.join(EMBED_DNA.out.h5,",
        "a swapped emit (protein given as DNA)"),
    "cross_shard_pairing": (
        "workflows/virnucpro.nf",
        "MERGE(EMBED_DNA.out.h5.join(EMBED_PROTEIN.out.h5, failOnDuplicate: true, failOnMismatch: true))",
        "MERGE(EMBED_DNA.out.h5.merge(EMBED_PROTEIN.out.h5) { d, p -> [d[0], d[1], p[1]] })",
        "a DNA shard paired with another shard's protein (pairing by arrival order)"),
    "protein_reads_nuc_side": (
        "workflows/virnucpro.nf", "ch_shards.map { meta, _nuc, prot -> [meta, prot] }",
        "ch_shards.map { meta, nuc, _prot -> [meta, nuc] }", "EMBED_PROTEIN handed the nucleotide shard"),
    "flag_dropped_allow_empty": (
        "modules/local/prepare/main.nf", "        --allow-empty \\\\\n", "", "a relied-on flag dropped (--allow-empty)"),
    "flag_dropped_manifest": (
        "modules/local/summarize/main.nf", "        --manifest ${manifest} \\\\\n", "",
        "a relied-on flag dropped (summarize --manifest)"),
    "publish_path_moved": (
        "conf/modules.config", 'path: { "${params.outdir}/${meta.id}/frames" }', 'path: { "${params.outdir}/frames/${meta.id}" }',
        "a publish path moved"),
    "errorstrategy_removed": (
        "conf/base.config",
        "        errorStrategy = { task.exitStatus in ([137, 140, 143, 104] + (175..177)) ? 'retry' : 'finish' }\n", "",
        "a removed errorStrategy (GPU label)"),
    "precision_not_passed": (
        "conf/modules.config", "            \"--precision ${task.accelerator ? params.precision : 'fp32'}\",\n", "",
        "--precision never reaching the CLI"),
    "output_not_published": (
        "conf/modules.config", "saveAs: { filename -> filename.endsWith('_mqc.tsv') ? null : filename }",
        "saveAs: { filename -> filename.endsWith('_mqc.tsv') || filename.endsWith('.html') ? null : filename }",
        "a promised output no longer published (report.html)"),
    "output_glob_renamed": (
        "modules/local/predict/main.nf", 'path("*.frames.tsv"), emit: frames', 'path("*.frame.tsv"), emit: frames',
        "an output pattern that no longer matches what the command writes"),
    "batch_size_dropped": (
        "conf/modules.config", 'ext.args   = { "--batch-size ${params.predict_batch_size} --device cpu" }',
        'ext.args   = { "--device cpu" }', "a param (--predict_batch_size) never reaching the CLI"),
    "gpu_device_dropped": (
        "conf/modules.config", "task.accelerator ? '--device cuda' : '--device cpu',", "'--device cpu',",
        "GPU tasks told to run on the CPU"),
    "stage_as_removed": (
        "modules/local/prepare/main.nf", "path(fasta, stageAs: 'input/?/*')", "path(fasta)",
        "staged input names that collide (two reads.fa of one sample)"),
    "embed_prefix_drift": (
        "modules/local/embed_dna/main.nf", "--output ${prefix}.dna.h5", "--output ${meta.id}.dna.h5",
        "an output name that drifts from the documented one"),
}


def run_one(name: str, timeout: int) -> dict:
    path, old, new, kind = MUTATIONS[name]
    with tempfile.TemporaryDirectory(prefix=f"mut_{name}_") as tmp:
        copy = Path(tmp)
        copy_checkout(ROOT, copy)
        target = copy / path
        text = target.read_text()
        if text.count(old) != 1:
            return {"mutation": name, "kind": kind, "result": "not_applicable", "detail": f"{path}: text found {text.count(old)} times"}
        target.write_text(text.replace(old, new))
        env = {**os.environ, "PYTHONPATH": str(copy)}
        start = time.monotonic()
        try:
            proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/pipeline"],
                                  cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"mutation": name, "kind": kind, "result": "timeout", "seconds": timeout}
        failed = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        return {"mutation": name, "kind": kind, "result": "caught" if proc.returncode != 0 else "missed",
                "seconds": round(time.monotonic() - start, 1), "by": failed[:1]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=sorted(MUTATIONS), default=None)
    ap.add_argument("--output", type=Path, default=None)
    ap.add_argument("--timeout", type=int, default=900, help="seconds per mutation run")
    args = ap.parse_args()
    results = []
    for name in args.only or list(MUTATIONS):
        results.append(run_one(name, args.timeout))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    report = {"caught": sum(r["result"] == "caught" for r in results), "total": len(results), "mutations": results}
    text = json.dumps(report, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    print(text)
    return 0 if report["caught"] == report["total"] else 1


if __name__ == "__main__":
    sys.exit(main())
