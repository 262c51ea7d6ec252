# Set-up and everyday targets. Each target installs what it needs by itself.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install demo demo-volumes test bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# PYTHONWARNINGS: setuptools' note on editable installs (information, not a deprecation) is hidden
$(STAMP): $(BIN)/python pyproject.toml
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

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
	$(BIN)/python -m pytest -q -n auto --dist load  # tests spread over the cores (pytest-xdist)

# Speed and memory figures of this machine (bench/run.py, about 25 min); bench-quick is a 4-min smoke run.
bench: $(STAMP)
	$(BIN)/python bench/run.py

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf runs/demo data/demo data/demo-raw runs/demo-volumes data/demo-volumes data/demo-volumes-raw
