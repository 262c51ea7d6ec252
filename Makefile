# Set-up and everyday targets. Each target installs what it needs by itself.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install demo demo-volumes test test-long stress docs wheel-check bench bench-quick browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# uv installs the dependencies (TensorFlow and the rest, 1.5 GB) in 15 s where pip takes a minute of
# the five make test has; pip stays in the venv (the wheel test builds with it). --compile-bytecode:
# where PYTHONDONTWRITEBYTECODE is set (CI here), a process would otherwise compile TensorFlow's
# modules from source at every start: 7.6 s instead of 3.6 s for each flexseg process the tests start.
# PYTHONWARNINGS: setuptools' note on editable installs (information, not a deprecation) is hidden
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet uv
	PYTHONWARNINGS="ignore:Editable installation" \
	  $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The optional tracking extra (MLflow, for train.track: mlflow): its tests are in make test-long
TRACK_STAMP = $(VENV)/.installed-track
$(TRACK_STAMP): $(STAMP)
	PYTHONWARNINGS="ignore:Editable installation" \
	  $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[test,track]'
	touch $(TRACK_STAMP)

# The whole pipeline on a synthetic CT-like dataset made on the spot (no download).
demo: $(STAMP)
	$(BIN)/flexseg demo

# The same on NIfTI volumes: split into slices, train, label volumes for unseen volumes, 3D scores.
demo-volumes: $(STAMP)
	$(BIN)/flexseg demo --volumes

# ruff first: pyflakes, import order, line length, complexity, the bandit security rules (nothing
# user-given is executed) and the formatter's layout; the same checks as .pre-commit-config.yaml
test: $(STAMP)
	$(BIN)/ruff check flexseg bench tests
	$(BIN)/ruff format --check flexseg bench tests
	$(BIN)/python -m pytest -q -n auto --dist load -m "not slow"  # spread over the cores (pytest-xdist)

# Chromium from the system packages, for the tests that open report.html in a real browser (they
# are skipped without it, and fail without it where FLEXSEG_REQUIRE_BROWSER=1, as in CI's .ci/run)
browser:
	command -v chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }

# The long end-to-end scenarios (marked slow: each 15 s or more here; cross-validation with a killed
# fold, the wheel in a fresh environment, kills at several moments, two processes of training, runs
# tracked in MLflow): about 5 min. CI (.ci/run) runs make test, then these.
test-long: $(TRACK_STAMP)
	$(BIN)/python -m pytest -q -n auto --dist load -m slow

# The tests of real processes, signals and races, each run 3 times (pytest-repeat): a failure that
# comes once in three is a failure. About 15 min; make test runs each once.
stress: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist load --count 3 tests/robustness

# The documentation site (mkdocs-material) into site/; --strict fails on a broken link or a page left out
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The wheel installed with its dependencies (resolved by pip) into a fresh environment in an empty
# folder outside the checkout, then --help and a one-epoch demo there (make test does the same with
# the dependencies borrowed from .venv: tests/test_wheel.py)
wheel-check: $(STAMP)
	set -e; tmp=$$(mktemp -d); \
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir $$tmp/dist .; \
	$(PYTHON) -m venv $$tmp/env; \
	$$tmp/env/bin/python -m pip install --quiet $$tmp/dist/flexseg-*.whl; \
	mkdir $$tmp/empty; cd $$tmp/empty; \
	$$tmp/env/bin/flexseg --help > /dev/null; \
	$$tmp/env/bin/flexseg demo --set train.epochs=1; \
	echo "wheel-check passed in $$tmp"

# Speed and memory figures of this machine (bench/run.py, about 2 hours); bench-quick is a 15-min smoke run.
bench: $(STAMP)
	$(BIN)/python bench/run.py

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf runs/demo data/demo data/demo-raw runs/demo-volumes data/demo-volumes data/demo-volumes-raw
