"""Property-based API test of the live predictor with schemathesis: no input may cause a server error.

The schema is the predictor's own OpenAPI document (``/predictor/openapi.json``), which types the V1 and V2
bodies precisely; kserve's generic ``/openapi.json`` leaves the V1 body untyped. schemathesis' CLI runs its
examples, coverage and fuzzing phases, positive and negative data, a bounded number of examples per operation
(well under a minute), with the single check ``not_a_server_error``. (Its pytest plugin, ``from_fixture``,
fails under pytest 9 with "'Function' object has no attribute '_nodeid'", hence the CLI.)
Afterwards the audit log holds exactly one record per answered row (the decisions counter), no more.
Run for the built-in model (Feast on Redis) and for a spec-trained German Credit model, whose document
comes from its contract (raw categorical values as string enums, every number bounded).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from creditops.governance.audit import AuditLog
from feast_repo.store import REPO_PATH
from predictor.testing import feast_world, german_bundle, redis_address, running_server, tiny_bundle

MODEL = "credit"
MAX_EXAMPLES = 30


@pytest.fixture(scope="module")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, run_id: str, redis_url: str
) -> Iterator[tuple[str, str]]:
    project = f"creditops_test_{run_id}_st"
    env, _ = feast_world(
        tmp_path_factory.mktemp("feast-st"), project, redis_address(redis_url), n_applicants=50
    )
    bundle = tiny_bundle(tmp_path_factory.mktemp("bundle-st"))
    audit_url = f"sqlite:///{tmp_path_factory.mktemp('audit-st') / 'audit.db'}"
    args = ["--bundle", str(bundle), "--feast-repo", str(REPO_PATH), "--audit-url", audit_url]
    with running_server([*args, "--max-batch", "20"], env=env, model_name=MODEL) as base:
        yield base, audit_url


@pytest.fixture(scope="module")
def german_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    bundle, _ = german_bundle(tmp_path_factory.mktemp("bundle-german-st"))
    audit_url = f"sqlite:///{tmp_path_factory.mktemp('audit-german-st') / 'audit.db'}"
    args = ["--bundle", str(bundle), "--audit-url", audit_url, "--max-batch", "20"]
    with running_server(args, model_name=MODEL) as base:
        yield base, audit_url


def decisions_served(base: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("creditops_predictor_decisions_total{") and f'model="{MODEL}"' in line
    )


@pytest.mark.parametrize("server", ["live_server", "german_server"])
def test_no_input_causes_a_server_error(server: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    base, audit_url = request.getfixturevalue(server)
    cli = Path(sys.executable).with_name("schemathesis")
    cmd = [
        str(cli), "run", f"{base}/predictor/openapi.json",
        "--checks", "not_a_server_error",
        "--mode", "all",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", "7",
        "--workers", "1",
        "--request-timeout", "30",
        "--generation-database", "none",
        "--suppress-health-check", "all",
        "--no-color",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Tested: 5" in result.stdout, result.stdout[-3000:]  # every operation was exercised
    # every answered row was audited, and nothing else
    log = AuditLog.open(audit_url)
    assert log.count() == decisions_served(base) > 0
    assert log.verify().ok
