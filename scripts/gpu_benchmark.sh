#!/usr/bin/env bash
# One command for the whole GPU measurement of the embedding engine (issue 10): host-only ceilings, ESM-2 3B and
# DNABERT-S tokens/s end to end and forward-only with MFU, bf16 vs fp32 agreement, and (issue 11) prepare with 1 vs 2
# workers on the host's free cores. JSON goes to $OUT (or
# ./gpu-benchmark). Run from the repository root on a machine with an NVIDIA GPU and virnucpro installed:
#
#   scripts/gpu_benchmark.sh                       # random weights of the real sizes
#   scripts/gpu_benchmark.sh --dnabert DIR --esm esm2_t36_3B_UR50D.pt   # real weights, when present
#   scripts/gpu_benchmark.sh --smoke               # CPU, tiny models: checks the script itself (the tests run this)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c "import virnucpro, torch" 2>/dev/null; then
  echo "gpu_benchmark: $PYTHON cannot import virnucpro and torch; install the package (pip install -e .) or set PYTHON" >&2
  exit 2
fi
exec "$PYTHON" scripts/gpu_benchmark.py "$@"
