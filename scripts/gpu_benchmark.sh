#!/usr/bin/env bash
# One command for the whole GPU measurement (issue 19); ONE JSON, gpu_benchmark.json, under $OUT (else ./gpu-benchmark).
# Works on a fresh machine: it installs the package itself, needs no PYTHONPATH and reads nothing outside the
# repository (its input is benchmarks/data/synthetic_genomes.fa.gz).
#
#   scripts/gpu_benchmark.sh                       # NVIDIA GPU: random weights of the real sizes (no download)
#   scripts/gpu_benchmark.sh --dnabert DIR --esm esm2_t36_3B_UR50D.pt   # real weights for the speed runs
#   scripts/gpu_benchmark.sh --smoke               # CPU, bundled tiny models: checks the script (the tests run this)
#
# Install: into the venv $VIRNUCPRO_BENCH_VENV (default .venv in the repository), made from $PYTHON (default python3)
# with that interpreter's packages visible, so a preinstalled CUDA build of torch is used, not downloaded again. When
# everything the package needs is already importable, `pip install -e . --no-deps` is the whole install (offline);
# otherwise pip installs what is missing. A venv that already imports this repository's virnucpro is reused.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
unset PYTHONPATH  # what runs is what was installed
start=$(date +%s)
BASE="${PYTHON:-python3}"
VENV="${VIRNUCPRO_BENCH_VENV:-$ROOT/.venv}"
DEPS="import torch, numpy, h5py, tokenizers, safetensors, huggingface_hub, tqdm"

ready() {
  [[ -x "$VENV/bin/python" ]] || return 1
  (cd / && "$VENV/bin/python" -c "$DEPS
import pathlib, sys, virnucpro
sys.exit(pathlib.Path(virnucpro.__file__).resolve().parents[1] != pathlib.Path(sys.argv[1]).resolve())" "$ROOT") 2>/dev/null
}

if ! ready; then
  echo "gpu_benchmark: installing virnucpro from $ROOT into $VENV" >&2
  "$BASE" -m venv --system-site-packages --without-pip "$VENV"
  # The base interpreter's own packages (also when it is itself a venv, which --system-site-packages skips).
  purelib="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  "$BASE" -c 'import site; print("\n".join(site.getsitepackages()))' > "$purelib/_virnucpro_bench_base.pth"
  if ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    "$VENV/bin/python" -m ensurepip -q
  fi
  if "$VENV/bin/python" -c "$DEPS
import setuptools, sys
sys.exit(int(setuptools.__version__.split('.')[0]) < 77)" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ROOT"
  else
    "$VENV/bin/python" -m pip install -q -e "$ROOT"
  fi
  ready || { echo "gpu_benchmark: $VENV/bin/python still cannot import virnucpro from $ROOT" >&2; exit 2; }
fi
exec "$VENV/bin/python" "$ROOT/scripts/gpu_benchmark.py" --setup-seconds "$(( $(date +%s) - start ))" "$@"
