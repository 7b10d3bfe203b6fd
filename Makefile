# Two commands do all set-up on a fresh machine:
#   make demo   — installs into .venv and runs `virnucpro run` on the bundled example data (CPU, no model download)
#   make test   — installs into .venv and runs the test suite
#   make golden-diff — largest score difference from the original's output per CPU kernel (README's figures)
# Variables:
#   TORCH_INDEX_URL — where pip finds torch. Unset (default): pip's own configuration, which on Linux from PyPI is the
#     CUDA build (several GB). For a machine without a GPU pass the CPU wheels, e.g.
#     make demo TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
#   TORCH_VERSION — the torch version installed (default 2.13.0).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
TORCH_INDEX_URL ?=
# as PyTorch's install instructions give it: that index serves torch and its dependencies
TORCH_SOURCE := $(if $(strip $(TORCH_INDEX_URL)),--index-url $(strip $(TORCH_INDEX_URL)))
REF := tests/data/reference

.PHONY: install demo test golden-diff clean

$(BIN)/virnucpro: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==$(TORCH_VERSION) $(TORCH_SOURCE)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(BIN)/virnucpro

demo: install
	$(BIN)/virnucpro run $(REF)/input.fa --outdir demo-output --chunk-length 500 \
	  --dnabert $(REF)/models/dnabert --esm $(REF)/models/esm2_t2_tiny.pt \
	  --classifier $(REF)/models/classifier.pth --device cpu --precision fp32
	@echo "NOTE: the demo models are tiny and randomly initialised (test fixtures): the calls below are meaningless; they only show the outputs' format"
	@echo "demo outputs in demo-output/: prediction_results.txt, prediction_results_highestscore.csv, reads.tsv,"
	@echo "  virus_summary.tsv, virus_regions.tsv, virus.fna, report.html (open it in a browser)"
	@echo "--- virus_summary.tsv (first rows) ---"
	@head -n 6 demo-output/virus_summary.tsv
	@echo "--- virus_regions.tsv (first rows) ---"
	@head -n 6 demo-output/virus_regions.tsv

test: install
	$(BIN)/python -m pytest -q tests

golden-diff: install
	$(BIN)/python tests/golden_diff.py

clean:
	rm -rf $(VENV) demo-output
