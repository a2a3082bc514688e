# D²TL Coverage: two commands.
#   make paper   the main job: paper profile (generate → train → evaluate → plot) and the book
#   make test    the tests: unit tests, the quick profile, nbval over its notebooks, the book
# Both create .venv from scratch on a fresh machine (torch==2.13.0 first, then the pins).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
MATHJAX := build/mathjax/static/tex-mml-chtml.js
BOOK_FLAGS := -W -n --keep-going
# native: this CPU's SIMD kernels; baseline: compute as another CPU would (README)
CPU_DISPATCH ?= native

.PHONY: paper test quick book pdf env clean

# The book shows one profile, named: `coverage_lib book --profile P` puts P's finished run into
# book/executed/ whole (refusing an unfinished one); `make book` shows paper once it has run.
paper: $(INSTALLED) $(MATHJAX)
	$(BIN)/python -m coverage_lib run --profile paper --cpu-dispatch $(CPU_DISPATCH)
	$(BIN)/python -m coverage_lib book --profile paper
	$(BIN)/jupyter-book build $(BOOK_FLAGS) .
	@echo "book: _build/html/index.html"

# The test book (quick profile) goes to build/test-book; `make book` puts paper back if it ran.
# The unit tests run on two pytest-xdist workers, one CPU thread each (tests/conftest.py);
# --dist loadgroup keeps a module marked xdist_group on one worker, so the sweeps its
# tests share (tests/test_fanout.py) run once.
# The browser tests (tests/browser: the live explorer against predict, no request outside the
# book, every table within its column) run last, in headless Chromium on the test book;
# tools/install_chromium.sh installs the distribution's package when no Chromium is there.
# nbval re-executes the notebooks, which rewrites what they write: it runs on a copy of the
# run (build/nbval), so the run's outputs stay the ones its stamps record; the book's pages go
# with it (a notebook glues the names they paste).
test: $(INSTALLED) $(MATHJAX)
	bash tools/install_chromium.sh
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=20 --ignore=tests/browser tests
	$(BIN)/python -m coverage_lib run --profile quick
	rm -rf build/nbval && mkdir -p build/nbval/data build/nbval/book && cp -r data/quick build/nbval/data/quick && cp book/*.md build/nbval/book/
	COVERAGE_PROJECT_ROOT=$(CURDIR)/build/nbval $(BIN)/python -m pytest --nbval build/nbval/data/quick/executed/
	$(BIN)/python -m coverage_lib book --profile quick
	$(BIN)/jupyter-book build $(BOOK_FLAGS) --path-output build/test-book .
	COVERAGE_BOOK_HTML=build/test-book/_build/html $(BIN)/python -m pytest tests/browser

quick: $(INSTALLED) $(MATHJAX)
	$(BIN)/python -m coverage_lib run --profile quick
	$(BIN)/python -m coverage_lib book --profile quick
	$(BIN)/jupyter-book build $(BOOK_FLAGS) .

book: $(INSTALLED) $(MATHJAX)
	$(BIN)/python -m coverage_lib book $(if $(PROFILE),--profile $(PROFILE))
	$(BIN)/jupyter-book build $(BOOK_FLAGS) .

# Optional: needs TeX Live with xelatex (see README); not part of `make paper` or `make test`.
pdf: $(INSTALLED)
	$(BIN)/jupyter-book build --builder pdflatex .

env: $(INSTALLED)

$(INSTALLED): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(MATHJAX): tools/vendor_mathjax.sh
	bash tools/vendor_mathjax.sh

clean:
	rm -rf _build build/test-book book/executed
