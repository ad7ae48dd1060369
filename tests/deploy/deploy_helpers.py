"""Paths shared by the deploy-artefact tests (a uniquely named module: every test dir has a conftest)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "staging", "prod")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tools/ (deploy_checks) is not an installed package
