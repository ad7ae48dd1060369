"""The canary analysis' PromQL against a real Prometheus scraping the predictor's own metric objects.

Two "pods" (``metrics_pod.py``: the predictor's metrics module served by prometheus_client, one per version)
are scraped every second by the Debian ``prometheus`` binary with the labels the shipped scrape config gives
a predictor pod (``namespace``, ``inferenceservice``, ``instance``). :class:`PrometheusMetrics` must find
each arm's requests, 5xx errors and latency (``increase`` extrapolates, so within a tolerance) and the
canary's answered rows exactly, and must notice a restarted pod (a counter reset). Skipped where no
``prometheus`` binary is installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess  # nosec B404  # the test runs real Prometheus and pod processes
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from creditops.deploy.kube_analysis import PrometheusError, PrometheusMetrics

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="no prometheus binary (apt-get install prometheus)"
)
POD = Path(__file__).with_name("metrics_pod.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Pod:
    """One metrics process; :meth:`send` applies a command and waits until it is applied."""

    def __init__(self, port: int, version: str) -> None:
        self.port, self.version = port, version
        self.proc = subprocess.Popen(  # nosec B603  # our own script
            [sys.executable, str(POD), str(port), version],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ok"

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, dict[str, Pod]]]:
    """``(prometheus url, pods by version)``: both pods scraped every second."""
    pods = {v: Pod(free_port(), v) for v in ("credit-pd@1", "credit-pd@2")}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "predictors",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{p.port}" for p in pods.values()],
                     "labels": {"namespace": "creditops", "inferenceservice": "credit-pd"}},
                ],
            }
        ],
    }  # fmt: skip
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    server = subprocess.Popen(  # nosec B603  # the installed prometheus binary
        [str(PROMETHEUS), f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _up(url, len(pods)):
            assert time.monotonic() < deadline and server.poll() is None, "prometheus never scraped both pods"
            time.sleep(0.2)
        yield url, pods
    finally:
        server.kill()
        server.wait(10)
        for pod in pods.values():
            pod.stop()


def _up(url: str, n: int) -> bool:
    try:
        got = httpx.get(f"{url}/api/v1/query", params={"query": "sum(up)"}, timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return False
    result = got.get("data", {}).get("result") or []
    return bool(result) and float(result[0]["value"][1]) == n


def test_arms_errors_latency_and_answers_from_real_prometheus(cluster: tuple[str, dict[str, Pod]]) -> None:
    url, pods = cluster
    champion, canary = pods["credit-pd@1"], pods["credit-pd@2"]
    time.sleep(2.5)  # a few samples before any traffic
    since = time.time()
    champion.send(requests=400, code="200", seconds=0.004)
    champion.send(decisions=400, decision="approve")
    canary.send(requests=190, code="200", seconds=0.006)
    canary.send(requests=10, code="500", seconds=0.006)
    canary.send(decisions=150, decision="approve")
    canary.send(decisions=40, decision="review")
    time.sleep(3.5)  # scraped at least twice since
    now = time.time()
    metrics = PrometheusMetrics(url, "creditops", "credit-pd")
    metrics.check()

    requests, errors, latencies = metrics.arm("credit-pd@2", since - 2, now)
    # increase() extrapolates to the range's edges: near the truth, never another arm's series
    assert 180 <= requests <= 300 and 8 <= errors <= 16, (requests, errors)
    assert 5.0 < float(np.median(latencies)) <= 7.5  # the (5, 7.5] ms bucket
    requests, errors, latencies = metrics.arm("credit-pd@1", since - 2, now)
    assert 360 <= requests <= 600 and errors == 0
    assert 3.0 < float(np.median(latencies)) <= 5.0  # the (3, 5] ms bucket
    assert PrometheusMetrics(url, "creditops", "other-isvc").arm("credit-pd@2", since - 2, now) == (0, 0, [])

    answered, bound, started, scraped = metrics.audit_answers("credit-pd@2", 60, now)
    assert answered == 190  # exact: the counters' last samples, not an extrapolated increase
    assert since - 60 < started < since and since < scraped <= now + 1 and bound >= 0
    assert metrics.audit_answers("credit-pd@1", 60, now)[0] == 400

    # the canary pod restarts: its counters start again from 0, so the answers are no longer exact
    canary.stop()
    pods["credit-pd@2"] = restarted = Pod(canary.port, "credit-pd@2")
    restarted.send(decisions=5, decision="approve")
    deadline = time.monotonic() + 30
    while True:
        try:
            metrics.audit_answers("credit-pd@2", 60, time.time())
        except PrometheusError as exc:
            if "counter reset" in str(exc):
                break
            assert "no pod of credit-pd@2" in str(exc)  # the old pod's series went stale before the new one
        assert time.monotonic() < deadline, "the reset was never seen"
        time.sleep(0.5)
