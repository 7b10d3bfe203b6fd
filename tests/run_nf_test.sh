#!/usr/bin/env bash
# Run the nf-test suites (module -stub tests and the pipeline tests) with -profile test.
# Needs `nextflow` and `nf-test` on PATH plus a container engine or the virnucpro package:
#   tests/run_nf_test.sh                 # everything, profile test (+ docker when available)
#   tests/run_nf_test.sh --tag gpu       # extra nf-test arguments are passed through
# Exits 0 without running anything when Nextflow or nf-test is missing (the static checks in
# tests/test_pipeline_static.py still run under pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in nextflow nf-test; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "run_nf_test.sh: '$tool' not on PATH; skipping nf-test" >&2
        exit 0
    fi
done

# tiny models and reads used by -profile test
if [ ! -f tests/data/reference/input.fa ] && [ -d /work/shared/reference ]; then
    mkdir -p tests/data && cp -rn /work/shared/reference tests/data/reference
fi

profile="${NFT_PROFILE:-test}"
if [ -z "${NFT_PROFILE:-}" ]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        profile="test,docker"
    fi
fi

export NXF_ANSI_LOG=false
exec nf-test test --profile "$profile" --verbose "$@"
