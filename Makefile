# Two commands do all set-up on a fresh machine:
#   make demo   — installs into .venv (CPU torch) and runs `virnucpro run` on the bundled example data, offline
#   make test   — installs into .venv and runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
REF := tests/data/reference

.PHONY: install demo test clean

$(BIN)/virnucpro: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==$(TORCH_VERSION)
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

clean:
	rm -rf $(VENV) demo-output
