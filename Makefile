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
fonts:
	@if find /usr/share/fonts /usr/local/share/fonts -iname '*cjk*' -o -iname '*wqy*' 2>/dev/null | grep -q .; then \
	  exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make fonts: no CJK font and no apt-get: reports will say that Chinese labels show as boxes"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else \
	  echo "make fonts: run 'sudo apt-get install -y fonts-noto-cjk' so that report plots draw Chinese labels"; exit 0; fi; \
	echo "make fonts: installing fonts-noto-cjk with apt-get"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq fonts-noto-cjk >/dev/null \
	  || echo "make fonts: apt-get failed: reports will say that Chinese labels show as boxes"

# Headless Chromium and CJK fonts for the browser tests (tests/test_browser.py), from the system's
# packages: apt-get installs them when they are missing (as root, as CI runs, or with passwordless sudo).
# Without apt the browser tests skip, saying how to enable them. Never `playwright install`: it
# downloads a browser from the internet.
browser:
	@if command -v chromium >/dev/null 2>&1 && find /usr/share/fonts -iname '*cjk*' -o -iname '*wqy*' 2>/dev/null | grep -q .; then \
	  exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make browser: no chromium (or no CJK font) and no apt-get: the browser tests will be skipped"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else \
	  echo "make browser: run 'sudo apt-get install -y chromium fonts-noto-cjk' to enable the browser tests"; exit 0; fi; \
	echo "make browser: installing chromium and fonts-noto-cjk with apt-get"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-noto-cjk >/dev/null \
	  || { echo "make browser: apt-get failed: the browser tests will be skipped"; [ -z "$${CI:-}" ]; }

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
