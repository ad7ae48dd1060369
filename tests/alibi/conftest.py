"""Fixtures for the tests that run INSIDE the separate alibi env (.venv-alibi: alibi, alibi-detect, numpy<2).

Run: ``.venv-alibi/bin/python -m pytest tests/alibi --confcutdir=tests/alibi`` (``--confcutdir`` keeps
the core ``tests/conftest.py`` out: it needs psycopg/redis, which this env does not have).

In any other env (the core test run) this folder collects nothing: see ``collect_ignore_glob`` below.

The bundle is trained the way production trains it: by the core env (xgboost 3.2.0, numpy 2) when
``.venv/bin/python`` exists, so these tests also prove the alibi env's xgboost 3.0.5 reads it.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
CORE_PYTHON = REPO / ".venv" / "bin" / "python"
sys.path.insert(0, str(TESTS))  # governance_helpers: the shared tiny-bundle builder

# Not the alibi env (e.g. the core `make test`): these tests cannot import their backends, so skip the folder.
# In the alibi env a broken install still fails loudly (test_env_is_the_alibi_env, or "no tests ran").
if importlib.util.find_spec("alibi_detect") is None:
    collect_ignore_glob = ["test_*.py"]

BUILD = (  # the bundle gets a feature contract, as every served bundle has (the decision core needs it)
    "import sys; from pathlib import Path; sys.path[:0] = [sys.argv[2], sys.argv[3]];"
    "import xgboost; from governance_helpers import make_bundle;"
    "from predictor.testing import embed_contract;"
    "make_bundle(Path(sys.argv[1]), n=1500); embed_contract(sys.argv[1]); print(xgboost.__version__)"
)


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("alibi") / "bundle"
    python = str(CORE_PYTHON) if CORE_PYTHON.exists() else sys.executable
    done = subprocess.run(
        [python, "-c", BUILD, str(out), str(TESTS), str(REPO / "kserve")],
        capture_output=True,
        text=True,
        check=True,
    )
    print(f"bundle trained with xgboost {done.stdout.strip()} ({python})")
    return out
