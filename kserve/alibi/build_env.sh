#!/usr/bin/env bash
# Build the separate alibi environment (default .venv-alibi) from kserve/alibi/requirements.lock, then put
# creditops on top without dependencies (the servers import only artifact, governance.explain and
# monitoring.drift, whose imports the lock has). Never touches the core .venv. Usage: build_env.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${1:-.venv-alibi}"
uv="${UV:-$(command -v .venv/bin/uv || command -v uv)}"
"$uv" venv --quiet --allow-existing --python "${PYTHON:-python3}" "$venv"
"$uv" pip sync --quiet --python "$venv/bin/python" kserve/alibi/requirements.lock
"$uv" pip install --quiet --python "$venv/bin/python" --no-deps -e .
"$venv/bin/python" -c 'import alibi.explainers, alibi_detect.cd, numpy; assert numpy.__version__.startswith("1.")'
