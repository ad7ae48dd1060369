"""The live predictor's security and protocol edges: bind host, caller auth, repository API, readiness,
bounded metric labels, versioned V2 routes (raw features, SQLite audit with anchor; no Feast needed)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import jwt
import pytest

from creditops.governance.audit import AuditLog
from creditops.security import hash_api_key
from creditops.serve_local import free_port, running_process
from predictor.testing import random_features, tiny_bundle

MODEL = "credit"
KSERVE_DIR = Path(__file__).resolve().parents[2] / "kserve"


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bundle(tmp_path_factory.mktemp("bundle"), n_trees=10)


@contextmanager
def predictor(
    bundle_dir: Path, tmp: Path, *extra: str, host: str = "127.0.0.1", ready_host: str | None = None
) -> Iterator[tuple[str, object]]:
    """Start ``python -m predictor`` on raw features; yield (base URL, process)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(KSERVE_DIR)}
    cmd = [
        sys.executable, "-m", "predictor", "--bundle", str(bundle_dir), "--model-name", MODEL,
        "--audit-url", f"sqlite:///{tmp}/audit.db", "--audit-anchor", str(tmp / "audit.anchor"),
        "--http-port", str(port), "--host", host, *extra,
    ]  # fmt: skip
    base = f"http://{ready_host or host}:{port}"
    with running_process(cmd, env, f"{base}/v2/health/ready", tmp / "predictor.log", 120) as proc:
        yield base, proc


@pytest.fixture(scope="module")
def anon(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One anonymous server shared by the tests that do not restart it."""
    tmp = tmp_path_factory.mktemp("anon")
    with predictor(bundle_dir, tmp, "--auth", "anonymous") as (base, _):
        yield base, tmp


def rows(n: int = 2, seed: int = 3) -> list[dict]:
    return json.loads(random_features(n, seed=seed).to_json(orient="records"))


def predict(base: str, **kw) -> httpx.Response:
    return httpx.post(f"{base}/v1/models/{MODEL}:predict", json={"instances": rows()}, timeout=30, **kw)


def callers(tmp: Path) -> dict[str, int]:
    with sqlite3.connect(tmp / "audit.db") as conn:
        return dict(conn.execute("SELECT caller_id, count(*) FROM audit_log GROUP BY caller_id").fetchall())


def test_binds_only_the_configured_host(bundle_dir: Path, tmp_path: Path) -> None:
    # 127.0.0.2 is loopback too on Linux: a server bound to it must not answer on 127.0.0.1 (as 0.0.0.0 would)
    with predictor(bundle_dir, tmp_path, "--auth", "anonymous", host="127.0.0.2") as (base, _):
        assert httpx.get(f"{base}/v2/health/ready").status_code == 200
        port = base.rsplit(":", 1)[1]
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2)


def test_api_keys_identify_the_caller_and_the_header_cannot(bundle_dir: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(
        f"# caller sha256(key)\nscoring-app {hash_api_key('s3cret-a')}\nops {hash_api_key('k-b')}\n"
    )
    with predictor(bundle_dir, tmp_path, "--auth", "api_key", "--api-key-hashes", str(keys)) as (base, _):
        assert httpx.get(f"{base}/v2/health/ready").status_code == 200  # probes stay public
        assert httpx.get(f"{base}/v2/models/{MODEL}/ready").status_code == 200
        r = predict(base)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert predict(base, headers={"X-API-Key": "wrong"}).status_code == 401
        assert predict(base, headers={"Authorization": "Basic abc"}).status_code == 401
        assert httpx.get(f"{base}/v2/models/{MODEL}").status_code == 401
        r = predict(base, headers={"X-API-Key": "s3cret-a", "X-Caller-Id": "someone-else"})
        assert r.status_code == 200, r.text
        assert predict(base, headers={"Authorization": "Bearer k-b"}).status_code == 200
    assert callers(tmp_path) == {"scoring-app": 2, "ops": 2}  # 2 rows per request; no refused request audited


def test_jwt_bearer_tokens_are_verified(bundle_dir: Path, tmp_path: Path) -> None:
    secret = "a-test-only-hmac-secret-of-32-bytes!"
    (tmp_path / "jwt.key").write_text(secret)
    args = ["--auth", "jwt", "--jwt-key-file", str(tmp_path / "jwt.key"), "--jwt-algorithm", "HS256"]
    args += ["--jwt-audience", "creditops"]
    now = int(time.time())

    def token(key: str = secret, **claims) -> str:
        body = {"sub": "loan-desk", "aud": "creditops", "exp": now + 300, **claims}
        return jwt.encode(body, key, algorithm="HS256")

    with predictor(bundle_dir, tmp_path, *args) as (base, _):

        def call(tok: str) -> int:
            return predict(base, headers={"Authorization": f"Bearer {tok}"}).status_code

        assert call(token()) == 200
        assert call(token(exp=now - 3600)) == 401
        assert call(token(key="another-secret-another-secret-xx")) == 401
        assert call(token(aud="someone-else")) == 401
        unsigned = jwt.encode({"sub": "x", "aud": "creditops", "exp": now + 300}, None, algorithm="none")
        assert call(unsigned) == 401
        assert predict(base).status_code == 401
    assert callers(tmp_path) == {"loan-desk": 2}


def test_repository_api_is_off_by_default_and_scoring_stays_up(anon: tuple[str, Path]) -> None:
    base, _ = anon
    r = httpx.post(f"{base}/v2/repository/models/{MODEL}/unload")
    assert r.status_code == 403, r.text
    assert httpx.post(f"{base}/v2/repository/models/{MODEL}/load").status_code == 403
    assert predict(base).status_code == 200
    assert httpx.get(f"{base}/v2/health/ready").json() == {"ready": True}


def test_repository_api_needs_credentials_and_readiness_follows_unload(
    bundle_dir: Path, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"admin {hash_api_key('adm')}\n")
    auth = {"X-API-Key": "adm"}
    args = ["--auth", "api_key", "--api-key-hashes", str(keys), "--repository-api"]
    with predictor(bundle_dir, tmp_path, *args) as (base, _):
        assert httpx.post(f"{base}/v2/repository/models/{MODEL}/unload").status_code == 401
        assert predict(base, headers=auth).status_code == 200
        assert httpx.post(f"{base}/v2/repository/models/{MODEL}/unload", headers=auth).status_code == 200
        ready = httpx.get(f"{base}/v2/health/ready")
        assert ready.status_code == 503 and ready.json() == {"ready": False}
        assert predict(base, headers=auth).status_code == 404
        assert httpx.post(f"{base}/v2/repository/models/{MODEL}/load", headers=auth).json()["load"] is True
        assert httpx.get(f"{base}/v2/health/ready").json() == {"ready": True}
        assert predict(base, headers=auth).status_code == 200


def test_repository_api_is_refused_without_authentication(bundle_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    cmd = [
        sys.executable, "-m", "predictor", "--bundle", str(bundle_dir), "--audit-url",
        f"sqlite:///{tmp_path}/a.db", "--http-port", str(port), "--auth", "anonymous", "--repository-api",
    ]  # fmt: skip
    done = subprocess.run(
        cmd, env={**os.environ, "PYTHONPATH": str(KSERVE_DIR)}, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    assert b"--repository-api needs authenticated callers" in done.stderr
    assert b"Traceback" not in done.stderr


def test_metric_labels_come_from_loaded_models_not_paths(anon: tuple[str, Path]) -> None:
    base, _ = anon
    with httpx.Client(base_url=base, timeout=30) as c:
        for i in range(60):
            c.post(f"/v1/models/bogus-{i}:predict", json={"instances": rows(1)})
            c.post(f"/v2/models/junk{i}/infer", json={"inputs": []})
        assert c.post(f"/v1/models/{MODEL}:predict", json={"instances": rows(1)}).status_code == 200
        text = c.get("/metrics").text
    lines = [x for x in text.splitlines() if x.startswith("creditops_predictor_requests_total{")]
    models = {x.split('model="', 1)[1].split('"', 1)[0] for x in lines}
    assert models == {MODEL, "_other"}, models
    assert "bogus" not in text and "junk" not in text
    other = sum(float(x.rsplit(" ", 1)[1]) for x in lines if 'model="_other"' in x)
    assert other >= 120


def test_versioned_metadata_ready_and_infer(anon: tuple[str, Path]) -> None:
    base, tmp = anon
    before = AuditLog.open(f"sqlite:///{tmp}/audit.db").count()
    with httpx.Client(base_url=base, timeout=30) as c:
        meta = c.get(f"/v2/models/{MODEL}").json()
        (version,) = meta["versions"]
        layouts = meta["parameters"]["input_layouts"]
        assert layouts["by_id"] == ["applicant_id"] and layouts["matrix"] == ["features"]
        names = {t["name"] for t in meta["inputs"]}
        assert names == {n for group in layouts.values() for n in group}
        assert c.get(f"/v2/models/{MODEL}/versions/{version}/ready").json()["ready"] is True
        assert c.get(f"/v2/models/{MODEL}/versions/nope/ready").status_code == 404
        assert c.get(f"/v2/models/{MODEL}/versions/{version}").json()["versions"] == [version]
        feats = meta["parameters"]["feature_order"]
        row = rows(1)[0]
        body = {"inputs": [{"name": "features", "shape": [1, len(feats)], "datatype": "FP64",
                            "data": [float(row[f]) for f in feats]}]}  # fmt: skip
        r = c.post(f"/v2/models/{MODEL}/versions/{version}/infer", json=body)
        assert r.status_code == 200, r.text
        assert {o["name"] for o in r.json()["outputs"]} >= {"pd", "decision"}
        assert c.post(f"/v2/models/{MODEL}/versions/old/infer", json=body).status_code == 404
    assert AuditLog.open(f"sqlite:///{tmp}/audit.db").count() == before + 1
