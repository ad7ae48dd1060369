"""A stand-in for Prometheus' HTTP API (``/api/v1/query``) on a live port, for the canary analysis tests.

The rollout tests need Prometheus answers they control (a 5xx canary, a slow one, answers without
records), so this stdlib server answers the instant queries
:class:`creditops.deploy.kube_analysis.PrometheusMetrics` sends with the response shape Prometheus uses. It
does not evaluate PromQL: it recognises the metric (``creditops_predictor_requests_total`` with or without
``code=~"5.."``, ``creditops_predictor_request_seconds_bucket``), the arm (``model_version="..."``) and the
range (``[Ns]``), and answers what ``increase`` would give over that range for a steady per-second rate of
each arm. The audit-completeness queries over ``creditops_predictor_decisions_total`` get the arm's
``sample`` (what its pods counted at their last scrape, which the traffic updates after each audit write, as
the predictor counts), its pods' start time, counter resets, the spread of the pods' scrape times and the row
rate. A query that does not select the expected ``namespace`` / ``inferenceservice`` gets an empty vector, as
it would from a real Prometheus. Every query is kept in ``queries``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Arm:
    """Steady per-second rates of one arm: requests, 5xx errors, and observations per latency bucket."""

    rps: float = 100.0
    err_rps: float = 0.0
    per_bucket: dict[float, float] = field(default_factory=lambda: {0.005: 20.0, 0.0075: 50.0, 0.01: 30.0})
    sample: tuple[float, int] = field(default_factory=lambda: (time.time(), 0))
    """The pods' last scrape: ``(time, answered rows)``, replaced whole (a sample is atomic)."""
    started: float = field(default_factory=lambda: time.time() - 60.0)
    resets: int = 0
    spread_s: float = 0.5
    rows_per_s: float = 800.0

    scrape_s: float = 0.5
    counted: int = 0

    def count(self, rows: int, *, total: int | None = None) -> None:
        """``rows`` more answers (or ``total`` answers), in the sample once ``scrape_s`` has passed.

        With ``total`` the sample is taken now.
        """
        self.counted = (self.counted if total is None else total) + rows
        if total is not None or time.time() - self.sample[0] >= self.scrape_s:
            self.sample = (time.time(), self.counted)

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, cumulative rate)`` for every bucket and ``+Inf``, as the histogram exposes them."""
        out, total = [], 0.0
        for le in BUCKETS:
            total += self.per_bucket.get(le, 0.0)
            out.append((repr(le), total))
        out.append(("+Inf", total + self.per_bucket.get(float("inf"), 0.0)))
        return out


@dataclass
class FakePrometheus:
    """Arms by ``model_version`` label, the selector a query must carry, and the queries received."""

    selector: tuple[str, ...] = ('namespace="creditops"', 'inferenceservice="credit-pd"')
    arms: dict[str, Arm] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)
    fail: bool = False

    def answer(self, query: str) -> tuple[int, dict[str, Any]]:
        self.queries.append(query)
        if self.fail:
            return 503, {"status": "error", "errorType": "unavailable", "error": "stand-in told to fail"}
        if query == "vector(1)":
            return 200, {"status": "success", "data": {"resultType": "vector", "result": [_sample({}, 1)]}}
        version = re.search(r'model_version="([^"]*)"', query)
        window = re.search(r"\[(\d+)s\]", query)
        arm = self.arms.get(version.group(1)) if version else None
        if arm is None or window is None or not all(s in query for s in self.selector):
            return 200, {"status": "success", "data": {"resultType": "vector", "result": []}}
        seconds = int(window.group(1))
        if "process_start_time_seconds" in query:
            result = [_sample({}, arm.started)]
        elif "resets(creditops_predictor_decisions_total" in query:
            result = [_sample({}, arm.resets)]
        elif "sum(timestamp(creditops_predictor_decisions_total" in query:
            result = [_sample({}, arm.sample[0])]
        elif "max(timestamp(creditops_predictor_decisions_total" in query:
            result = [_sample({}, arm.sample[0])]
        elif "min(timestamp(creditops_predictor_decisions_total" in query:
            result = [_sample({}, arm.sample[0] - arm.spread_s)]
        elif "rate(creditops_predictor_decisions_total" in query:
            result = [_sample({}, arm.rows_per_s)]
        elif "max_over_time(creditops_predictor_decisions_total" in query:
            result = [_sample({}, arm.sample[1])]
        elif "creditops_predictor_request_seconds_bucket" in query:
            result = [_sample({"le": le}, rate * seconds) for le, rate in arm.cumulative()]
        elif 'code=~"5.."' in query:
            result = [_sample({}, arm.err_rps * seconds)]
        elif "creditops_predictor_requests_total" in query:
            result = [_sample({}, arm.rps * seconds)]
        else:
            return 400, {"status": "error", "errorType": "bad_data", "error": f"unknown query {query!r}"}
        return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}


def _sample(metric: dict[str, str], value: float) -> dict[str, Any]:
    return {"metric": metric, "value": [1_800_000_000.0, repr(float(value))]}


@contextmanager
def running_prometheus(state: FakePrometheus) -> Iterator[str]:
    """Serve ``state`` on 127.0.0.1 (a free port); yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlparse(self.path)
            if url.path != "/api/v1/query":
                code, body = 404, {"status": "error", "error": "not found"}
            else:
                code, body = state.answer(parse_qs(url.query).get("query", [""])[0])
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
