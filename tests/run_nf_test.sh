#!/usr/bin/env bash
# Run the nf-test suites (module tests and tests/default.nf.test) with -profile test.
# Needs `nextflow` and `nf-test` on PATH plus a container engine or conda:
#   tests/run_nf_test.sh                 # everything, profile test (+ docker when available)
#   tests/run_nf_test.sh --tag pipeline  # extra nf-test arguments are passed through
# NFT_PROFILE overrides the profile (e.g. NFT_PROFILE=test,conda). Exits 0 without running anything when
# Nextflow or nf-test is missing (the static checks in tests/test_pipeline_*.py still run under pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in nextflow nf-test; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "run_nf_test.sh: '$tool' not on PATH; skipping nf-test" >&2
        exit 0
    fi
done

if [ ! -f tests/data/reference/input.fa ]; then
    echo "run_nf_test.sh: tests/data/reference is missing (tiny models and reads of -profile test)" >&2
    exit 1
fi

profile="${NFT_PROFILE:-test}"
if [ -z "${NFT_PROFILE:-}" ]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        profile="test,docker"
    fi
fi

export NXF_ANSI_LOG=false
# main.nf declares typed params: strict syntax (the default from Nextflow 26.04; needed on 25.10)
export NXF_SYNTAX_PARSER=v2
exec nf-test test --profile "+$profile" --verbose "$@"
