"""Fixtures of the deploy-artefact tests: the repository root on sys.path (tools/), rendered overlays."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import deploy_checks  # noqa: E402

OVERLAYS = ("dev", "staging", "prod")


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every overlay rendered once by kubectl kustomize."""
    return {name: deploy_checks.render(ROOT / "manifests" / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(scope="session")
def isvc_validator() -> deploy_checks.IsvcValidator:
    """The tightened KServe CRD validator (the 2 MB CRD is parsed once per session)."""
    return deploy_checks.IsvcValidator()
