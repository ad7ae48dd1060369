"""Fixtures of the deploy-artefact tests: the repository root on sys.path (tools/), rendered overlays."""

from __future__ import annotations

from typing import Any

import pytest
from deploy_helpers import OVERLAYS, ROOT

from tools import deploy_checks


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every overlay rendered once by kubectl kustomize."""
    return {name: deploy_checks.render(ROOT / "manifests" / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(scope="session")
def isvc_validator() -> deploy_checks.IsvcValidator:
    """The tightened KServe CRD validator (the 2 MB CRD is parsed once per session)."""
    return deploy_checks.IsvcValidator()
