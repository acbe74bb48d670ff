# farfeed: the README's two commands.
#   make demo   set up and run the end-to-end demo
#   make test   set up and run the test suite (what CI runs)
#   make docs   the Python API reference, from the docstrings (pdoc), in build/api/
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
# torch/torchvision pair known to import together on this platform (pyproject asks only a range)
TORCH_PAIR ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test lint typecheck docs clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PAIR)
	$(PIP) install -q -e '.[bench,test,fast]' $(TORCH_PAIR)
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/farfeed demo

test: setup
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -x --durations=15

lint: setup
	$(VENV)/bin/ruff check src tests

typecheck: setup
	$(VENV)/bin/mypy

$(VENV)/.docs-installed: $(VENV)/.installed
	$(PIP) install -q -e '.[docs]' $(TORCH_PAIR)
	touch $@

docs: $(VENV)/.docs-installed
	rm -rf build/api
	$(PY) scripts/api_docs.py build/api

clean:
	rm -rf $(VENV) build dist *.egg-info demo-out bench-out
