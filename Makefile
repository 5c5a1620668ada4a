# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test browser fonts serve bench bench-quick data models clean

install: $(STAMP) fonts

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

# The names comparison (RNN, LSTM, GRU) on the bundled data; prints the report's path at the end.
demo: $(STAMP)
	$(BIN)/rnnlab compare names --cells rnn,lstm,gru --ensemble 1

test: $(STAMP) fonts browser
	$(BIN)/python -m pytest -q

# A CJK font, so that the reports' plots draw Chinese labels (matplotlib has none of its own; rnnlab
# registers an installed Noto CJK / WenQuanYi font with it): fonts-noto-cjk from apt-get where it is
# missing (as root, as CI runs, or with passwordless sudo). Without one a report says so once.
FONT_CHECK := find /usr/share/fonts /usr/local/share/fonts -iname '*cjk*' -o -iname '*wqy*' 2>/dev/null | grep -q .
fonts:
	@sh tools/apt_install.sh fonts "$(FONT_CHECK)" "reports will say that Chinese labels show as boxes" 0 fonts-noto-cjk

# Headless Chromium and CJK fonts for the browser tests (tests/test_browser.py), from the system's
# packages: apt-get installs them when they are missing (as root, as CI runs, or with passwordless sudo).
# Without apt the browser tests skip, saying how to enable them. Never `playwright install`: it
# downloads a browser from the internet.
browser:
	@sh tools/apt_install.sh browser "command -v chromium && $(FONT_CHECK)" "the browser tests will be skipped" 1 \
	  chromium fonts-noto-cjk

# The lab in a browser: http://127.0.0.1:8000/ (bundled models; add your runs with --runs runs).
serve: $(STAMP)
	$(BIN)/rnnlab serve $$([ -d runs ] && echo --runs runs)

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

# Retrain the bundled models (models/) with their recorded commands and write models/MODELS.md (see its training times).
models: $(STAMP)
	$(BIN)/python tools/make_models.py
