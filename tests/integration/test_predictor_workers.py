"""Two predictor workers behind one port under concurrent load, audited on Postgres with an anchor file.

Proves: every answered prediction has its audit record (rows == answers exactly), each worker writes its own
verified chain, and killing a worker mid-load loses nothing that was answered.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from creditops.governance.audit import TABLE, AuditLog
from creditops.serve_local import free_port, running_process
from predictor.testing import random_features, tiny_bundle

MODEL = "credit"
CLIENTS = 10
KSERVE_DIR = Path(__file__).resolve().parents[2] / "kserve"
PG_ADMIN = os.environ.get("CREDITOPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module")
def audit_db(run_id: str) -> Iterator[str]:
    name = f"creditops_test_{run_id}_workers"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, audit_db: str
) -> Iterator[tuple[str, psutil.Process, Path]]:
    tmp = tmp_path_factory.mktemp("workers")
    bundle = tiny_bundle(tmp / "bundle", n_trees=10)
    port = free_port()
    anchor = tmp / "audit.anchor"
    cmd = [
        sys.executable, "-m", "predictor", "--bundle", str(bundle), "--model-name", MODEL,
        "--audit-url", audit_db, "--audit-anchor", str(anchor), "--http-port", str(port),
        "--auth", "anonymous", "--workers", "2",
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    log = tmp / "predictor.log"
    env = {**os.environ, "PYTHONPATH": str(KSERVE_DIR)}
    with running_process(cmd, env, f"{base}/v2/health/ready", log, 180) as proc:
        parent = psutil.Process(proc.pid)
        _wait_for(lambda: len(_workers(parent)) == 2 and log.read_text().count("startup complete") >= 2, 180)
        yield base, parent, anchor


def _workers(parent: psutil.Process) -> list[psutil.Process]:
    return [
        p
        for p in parent.children()
        if "resource_tracker" not in " ".join(p.cmdline()) and p.is_running() and p.status() != "zombie"
    ]


def _wait_for(cond, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def load(base: str, seconds: float, during=None) -> tuple[list[str], int, int]:
    """``CLIENTS`` threads posting one-row V1 requests for ``seconds``: answered ids, errors, non-200s."""
    bodies = [
        json.dumps({"instances": [r]}) for r in json.loads(random_features(50, 5).to_json(orient="records"))
    ]
    answered: list[str] = []
    failures = {"conn": 0, "status": 0}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as c:
            i = k
            while time.monotonic() < stop:
                i += 1
                try:
                    r = c.post(f"/v1/models/{MODEL}:predict", content=bodies[i % len(bodies)],
                               headers={"content-type": "application/json"})  # fmt: skip
                except httpx.HTTPError:
                    with lock:
                        failures["conn"] += 1
                    continue
                with lock:
                    if r.status_code == 200:
                        answered.extend(p["prediction_id"] for p in r.json()["predictions"])
                    else:
                        failures["status"] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    if during is not None:
        during()
    for t in threads:
        t.join()
    return answered, failures["conn"], failures["status"]


def audited_ids(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(f"SELECT prediction_id FROM {TABLE}")]


def test_two_workers_under_load_audit_every_answer_exactly(server, audit_db: str) -> None:
    base, _, anchor = server
    answered, conn_errors, bad = load(base, seconds=4.0)
    assert conn_errors == 0 and bad == 0
    assert len(answered) > 100
    ids = audited_ids(audit_db)
    assert len(ids) == len(answered) and set(ids) == set(answered)  # rows == answers, none without a record
    report = AuditLog.open(audit_db).verify(anchor_path=anchor)
    assert report.ok, report.summary()
    assert report.n_chains == 2 and report.n_anchored == 2  # both workers wrote (each its own chain)
    print(f"workers test: {len(answered)} answers, {len(ids)} audit rows, {report.n_chains} chains verified")


def test_killing_a_worker_mid_load_loses_nothing_answered(server, audit_db: str) -> None:
    base, parent, anchor = server
    before = set(audited_ids(audit_db))
    victim = _workers(parent)[0]

    def kill_one() -> None:
        time.sleep(1.5)
        os.kill(victim.pid, signal.SIGKILL)

    answered, conn_errors, bad = load(base, seconds=4.0, during=kill_one)
    assert not victim.is_running() or victim.status() == "zombie"
    ids = set(audited_ids(audit_db)) - before
    missing = set(answered) - ids
    assert not missing, f"{len(missing)} answered predictions have no audit record"
    # records committed for requests whose answer the kill cut off: at most one request per client
    assert len(ids) - len(answered) <= CLIENTS
    assert bad == 0
    report = AuditLog.open(audit_db).verify(anchor_path=anchor)
    assert report.ok, report.summary()
    _wait_for(lambda: len(_workers(parent)) == 2, 120)  # the supervisor replaced the dead worker
    print(
        f"kill test: {len(answered)} answers, {len(ids)} new audit rows, {conn_errors} connection errors, "
        f"{report.unanchored_records} records after a checkpoint"
    )
