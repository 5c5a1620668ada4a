# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test bench bench-quick data models clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

# The names comparison (RNN, LSTM, GRU) on the bundled data; prints the report's path at the end.
demo: $(STAMP)
	$(BIN)/rnnlab compare names --cells rnn,lstm,gru

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Every benchmark, one after another; writes benchmarks/RESULTS.md (40 min on 2 cores).
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# A smoke run of the same scripts on small slices (a few minutes); writes benchmarks/RESULTS-quick.md.
bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --quick

# Regenerate the bundled data/ from the raw sets in ../shared/data (byte-identical on re-run).
data: $(STAMP)
	$(BIN)/rnnlab data import --from ../shared/data --to data

clean:
	rm -rf $(VENV) runs .pytest_cache

# Retrain the bundled models (models/) with their recorded commands and write models/MODELS.md (about 30 min).
models: $(STAMP)
	$(BIN)/python tools/make_models.py
