#!/usr/bin/env bash
# pre-commit hook (.pre-commit-config.yaml, block-pipeline-outdir): refuse to commit what a pipeline run writes
# into the checkout (its --outdir, work/ and .nextflow* files) instead of pipeline code.
set -euo pipefail
status=0
for f in "$@"; do
    case "$f" in
        work/* | .nextflow* | */pipeline_info/execution_trace_* | */pipeline_info/execution_report_* | \
            */pipeline_info/execution_timeline_* | */pipeline_info/pipeline_dag_* | */pipeline_info/params_*.json | \
            */multiqc/multiqc_report.html | pipeline_info/* | results/*)
            echo "block-pipeline-outdir: $f looks like output of a pipeline run, not pipeline code" >&2
            status=1
            ;;
    esac
done
exit "$status"
