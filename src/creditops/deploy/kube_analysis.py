"""Canary analysis windows on Kubernetes (:class:`KubeWindow`): the audit log, and Prometheus if given.

:class:`KubeWindow` is a :class:`creditops.deploy.controller.WindowSource`.

On the cluster no router sees both arms' requests, so the observations come from where the predictors leave
them. The **audit log** (the same SQLite / Postgres database every predictor writes) has one record per
answered row, labelled with the served version (``"<model_name>@<version>"``): each arm's PDs and its
approve / decline counts come from there. Errors and latency are not in the audit log (a failed request has
no record): they come from the predictors' Prometheus metrics through the HTTP API
(:class:`PrometheusMetrics`), attributed to an arm by joining each pod's ``creditops_predictor_model_info``
on ``instance``, so the same query works for Serverless revisions and Standard canary predictors. Without
Prometheus those two judges report ``inconclusive`` (:attr:`ArmWindow.unmeasured`), never ``pass``; the
controller then holds and the progress deadline rolls the canary back.

Audit completeness (records == answers) is judged for the canary, whose pods all serve this rollout: the
answers are its pods' ``creditops_predictor_decisions_total`` at their last scrape, and the records are the
canary label's audit records from its earliest pod's start up to the newest of those scrapes. The predictor
stamps a record before it is durable and counts the row after, so every counted row's record falls in that
range: fewer records than answers is exact evidence of a lost record. Rows the pods answered between their
own scrape and the newest one may add records, bounded by twice the canary's row rate over that spread plus
one second. A restarted canary pod (a counter reset) makes the count inexact: the judge is inconclusive.
Record times come from the pods' clocks and scrape times from Prometheus': both NTP-synchronised.

Audit timestamps are wall-clock UTC written by the pods, so the window's clock must be wall-clock too: drive
:func:`creditops.deploy.controller.run_canary` with ``clock=time.time`` (a monotonic clock is converted
through the current offset). Pods and the runner are assumed NTP-synchronised; a skew of a few seconds
moves the window edges by as much.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from creditops.deploy.analysis import ArmWindow
from creditops.errors import CreditOpsError

NO_PROMETHEUS = "not measured: error rate and latency are not in the audit log (no --prometheus-url)"


def _label_value(value: str) -> str:
    """A PromQL string literal's content (backslash and double quote escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


class PrometheusError(CreditOpsError):
    """A Prometheus HTTP API call failed (unreachable, HTTP error, ``status: error``, unexpected shape)."""


class PrometheusMetrics:
    """Per-arm requests, 5xx errors and latency of the predictor pods, read from Prometheus' HTTP API.

    The series are the predictor's (``kserve/predictor/metrics.py``) with the labels the shipped scrape
    config adds (``manifests/base/prometheus/prometheus.yml``: ``namespace``, ``inferenceservice``,
    ``instance``). A pod belongs to an arm when its ``creditops_predictor_model_info`` gauge carried the
    arm's ``model_version`` at some point in the window.

    Args:
        url: Prometheus base URL (``http://prometheus:9090``).
        namespace: The InferenceService's namespace (``namespace`` label).
        isvc: The InferenceService (``inferenceservice`` label).
        timeout_s: Per-query HTTP timeout.
        max_latency_samples: Latency observations rebuilt per arm at most (larger counts are scaled down
            proportionally, which only makes the latency test more conservative).
    """

    def __init__(
        self,
        url: str,
        namespace: str,
        isvc: str,
        *,
        timeout_s: float = 10.0,
        max_latency_samples: int = 20_000,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise CreditOpsError(f"--prometheus-url must be an http(s) URL, got {url!r}")
        self.url = url.rstrip("/")
        self.selector = f'namespace="{_label_value(namespace)}",inferenceservice="{_label_value(isvc)}"'
        self.timeout_s = timeout_s
        self.max_latency_samples = max_latency_samples

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's ``data.result`` (a vector: ``[{"metric": {...}, "value": [t, "v"]}]``)."""
        import httpx

        params = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
        try:
            resp = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=self.timeout_s)
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise PrometheusError(f"Prometheus {self.url}: {type(exc).__name__}: {exc}") from None
        if resp.status_code != 200 or not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else None
            why = error or resp.text[:200]
            raise PrometheusError(f"Prometheus {self.url}: HTTP {resp.status_code}: {why}")
        data = body.get("data") or {}
        if data.get("resultType") not in ("vector", "scalar"):
            raise PrometheusError(f"Prometheus {self.url}: expected a vector, got {data.get('resultType')!r}")
        result = data.get("result")
        return [{"metric": {}, "value": result}] if data["resultType"] == "scalar" else list(result or [])

    def check(self) -> None:
        """Fail early (one line) when Prometheus does not answer a trivial query."""
        self.query("vector(1)")

    def queries(self, version_label: str, range_s: int) -> dict[str, str]:
        """The PromQL of one arm over the last ``range_s`` seconds: ``requests``, ``errors``, ``latency``."""
        version = _label_value(version_label)
        info = f'creditops_predictor_model_info{{{self.selector},model_version="{version}"}}'
        pods = f"max by (instance) (max_over_time({info}[{range_s}s]))"
        req = f"creditops_predictor_requests_total{{{self.selector}}}"
        err = f'creditops_predictor_requests_total{{{self.selector},code=~"5.."}}'
        buckets = f"creditops_predictor_request_seconds_bucket{{{self.selector}}}"
        return {
            "requests": f"sum(increase({req}[{range_s}s]) and on (instance) {pods})",
            "errors": f"sum(increase({err}[{range_s}s]) and on (instance) {pods})",
            "latency": f"sum by (le) (increase({buckets}[{range_s}s]) and on (instance) {pods})",
        }

    def audit_answers(self, version_label: str, range_s: int, now: float) -> tuple[int, int, float, float]:
        """``(answered rows, in-flight bound, first pod start, newest scrape)`` of ``version_label``'s pods.

        ``answered`` sums each pod's decision counters at their latest sample within ``range_s``; the bound
        covers rows a pod answered after its own scrape and before the newest one (twice the arm's row rate
        over the spread of the scrape times, plus one second). Raises :class:`PrometheusError` when no pod of
        the arm reports decisions, or a counter was reset.
        """
        version = _label_value(version_label)
        info = f'creditops_predictor_model_info{{{self.selector},model_version="{version}"}}'
        pods = f"max by (instance) (max_over_time({info}[{range_s}s]))"
        rows = f"creditops_predictor_decisions_total{{{self.selector}}}"

        def value(promql: str) -> float | None:
            got = self.query(f"{promql} and on (instance) {pods})", now)
            return float(got[0]["value"][1]) if got else None

        started = value(f"min(process_start_time_seconds{{{self.selector}}}")
        for _ in range(5):  # the counts and their scrape times from the same samples: retried if one landed
            before = value(f"sum(timestamp({rows})")
            answered = value(f"sum(max_over_time({rows}[{range_s}s])")
            newest, oldest = value(f"max(timestamp({rows})"), value(f"min(timestamp({rows})")
            if value(f"sum(timestamp({rows})") == before:
                break
        else:
            raise PrometheusError(f"{version_label}: new scrapes kept landing while its answers were read")
        if started is None or answered is None or newest is None or oldest is None:
            raise PrometheusError(f"no pod of {version_label} reports its decisions and start time")
        if value(f"sum(resets({rows}[{range_s}s])"):
            raise PrometheusError(f"a pod of {version_label} restarted (counter reset): answers not exact")
        per_s = value(f"sum(rate({rows}[60s])") or 0.0
        bound = math.ceil(2.0 * per_s * (newest - oldest + 1.0)) if math.isfinite(per_s) else 0
        return round(answered), bound, started, newest

    def arm(self, version_label: str, since: float, now: float) -> tuple[int, int, list[float]]:
        """``(requests, 5xx errors, latencies in ms)`` of one arm's pods for wall-clock ``[since, now]``."""
        range_s = max(1, math.ceil(now - since))
        q = self.queries(version_label, range_s)
        requests = _total(self.query(q["requests"], now))
        errors = min(_total(self.query(q["errors"], now)), requests)
        latencies = latency_samples(self.query(q["latency"], now), self.max_latency_samples)
        return requests, errors, latencies


def _total(result: list[dict[str, Any]]) -> int:
    """A summed counter increase as a count (``increase`` extrapolates, so it is rounded)."""
    total = sum(float(r["value"][1]) for r in result)
    return round(total) if math.isfinite(total) and total > 0 else 0


def latency_samples(result: list[dict[str, Any]], max_samples: int = 20_000) -> list[float]:
    """Latency observations (ms) rebuilt from histogram bucket increases (``le`` -> cumulative count).

    Each bucket's observations are spread evenly over it, the assumption ``histogram_quantile`` makes; those
    above the largest finite bound sit on it (as ``histogram_quantile`` answers). Both arms are rebuilt the
    same way, so the rank test compares like with like at the buckets' resolution.
    """
    cumulative = sorted(
        (float(r["metric"]["le"]), float(r["value"][1])) for r in result if "le" in r["metric"]
    )
    counts, bounds, before = [], [], 0.0
    for le, count in cumulative:
        c = count if math.isfinite(count) else 0.0
        counts.append(max(c - before, 0.0))
        bounds.append(le)
        before = max(before, c)
    total = sum(counts)
    if total <= 0:
        return []
    scale = min(1.0, max_samples / total)
    out: list[float] = []
    lower = 0.0
    for le, count in zip(bounds, counts, strict=True):
        k = round(count * scale)
        if math.isinf(le):
            out.extend([lower * 1000.0] * k)
            continue
        out.extend((lower + (le - lower) * (i + 0.5) / k) * 1000.0 for i in range(k))
        lower = le
    return out


def read_arms(url: str, labels: list[str], start: datetime) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(model_version, decision, pd)`` of the audit records of ``labels`` at or after ``start``.

    Only the three fields the judges need, the PD extracted by the database (``json_extract`` /
    ``->>``), so a check reads a busy window several times faster than the full decisions
    (:func:`creditops.monitoring.source.read_audit_decisions`, which parses every input too).
    """
    from creditops.governance.audit import TABLE

    marks = ", ".join(["%s"] * len(labels))
    where = f" FROM {TABLE} WHERE ts >= %s AND model_version IN ({marks})"  # nosec B608  # constants, bound values
    sqlite = "SELECT model_version, decision, json_extract(output, '$.pd')" + where
    postgres = "SELECT model_version, decision, (output::json ->> 'pd')::float8" + where
    rows = _select(url, sqlite, postgres, [_ts(start), *labels])
    if not rows:
        return np.empty(0, object), np.empty(0, object), np.empty(0, float)
    versions, decisions, pds = zip(*rows, strict=True)
    pd_ = np.array([np.nan if p is None else p for p in pds], dtype=float)
    return np.array(versions, dtype=object), np.array(decisions, dtype=object), pd_


def count_records(url: str, label: str, start: datetime, end: datetime) -> int:
    """Audit records labelled ``label`` stamped within ``[start, end]``."""
    from creditops.governance.audit import TABLE

    where = "WHERE ts >= %s AND ts <= %s AND model_version = %s"
    sql = f"SELECT count(*) FROM {TABLE} {where}"  # nosec B608  # a constant table, bound parameters
    return int(_select(url, sql, sql, [_ts(start), _ts(end), label])[0][0])


def _ts(moment: datetime) -> str:
    """A time as the audit log writes it (fixed-width UTC text, so text order is time order)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _select(url: str, sqlite_sql: str, postgres_sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Rows of a read-only query (``%s`` placeholders) on the SQLite or Postgres audit log."""
    if url.startswith("sqlite:///"):
        import sqlite3

        path = Path(url[len("sqlite:///") :]).absolute()
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)  # never creates a file
        try:
            return conn.execute(sqlite_sql.replace("%s", "?"), params).fetchall()
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return conn.execute(postgres_sql, params).fetchall()


class KubeWindow:
    """Canary and champion observations of requests since a clock value (a ``WindowSource``).

    Args:
        audit_url: The audit log the predictors write (``sqlite:///path`` or ``postgresql://...``).
        canary_label: The canary's ``model_version`` in the audit log (``"credit-pd@2"``).
        champion_label: The champion's.
        metrics: Prometheus reader for errors and latency; None -> those judges are inconclusive.
        clock: The clock ``since`` values come from (``time.time``; another clock is converted to wall-clock
            through the current offset).
    """

    def __init__(
        self,
        audit_url: str,
        canary_label: str,
        champion_label: str,
        *,
        metrics: PrometheusMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from creditops.governance.audit import AuditLog

        if canary_label == champion_label:
            raise CreditOpsError(f"the canary and the champion are the same version ({canary_label})")
        AuditLog.open(audit_url, create=False).close()  # a missing log is one line now, not at every check
        self.audit_url = audit_url
        self.canary_label, self.champion_label = canary_label, champion_label
        self.metrics = metrics
        self.clock = clock
        self.first: float | None = None  # wall clock of the first window: the rollout's start

    def wall(self, since: float) -> float:
        """``since`` (a value of :attr:`clock`) as wall-clock seconds."""
        if self.clock is time.time:
            return since
        return time.time() - (self.clock() - since)

    def window(self, since: float) -> tuple[ArmWindow, ArmWindow]:
        """``(canary, champion)`` over requests at or after ``since``."""
        start, now = self.wall(since), time.time()
        self.first = start if self.first is None else min(self.first, start)
        try:
            versions, decision, pds = read_arms(
                self.audit_url, [self.canary_label, self.champion_label], datetime.fromtimestamp(start, UTC)
            )
        except Exception as exc:  # noqa: BLE001 - any database failure becomes one line for the operator
            raise CreditOpsError(f"audit log {self.audit_url}: {type(exc).__name__}: {exc}") from None
        arms = []
        for label in (self.canary_label, self.champion_label):
            mask = versions == label
            decisions = decision[mask]
            arm = ArmWindow(
                requests=int(mask.sum()),
                scores=pds[mask].tolist(),
                approved=int(np.count_nonzero(decisions == "approve")),
                declined=int(np.count_nonzero(decisions == "decline")),
            )
            self._measure(arm, label, start, now)
            arms.append(arm)
        self._audit(arms[0], now)
        return arms[0], arms[1]

    def _audit(self, canary: ArmWindow, now: float) -> None:
        """The canary's answers at its pods' last scrapes and its audit records from its pods' start on."""
        canary.audited = 0  # judged, or inconclusive with the reason
        if self.metrics is None:
            canary.unmeasured["audit"] = (
                "not measured: answers are counted by Prometheus (no --prometheus-url)"
            )
            return
        range_s = max(1, math.ceil(now - (self.first or now)) + 60)  # pods ready just before the first step
        try:
            answers, in_flight, started, scraped = self.metrics.audit_answers(self.canary_label, range_s, now)
            span = (datetime.fromtimestamp(started, UTC), datetime.fromtimestamp(scraped, UTC))
            records = count_records(self.audit_url, self.canary_label, *span)
        except PrometheusError as exc:
            canary.unmeasured["audit"] = f"not measured: {exc}"
            return
        except Exception as exc:  # noqa: BLE001 - any database failure becomes one line for the operator
            raise CreditOpsError(f"audit log {self.audit_url}: {type(exc).__name__}: {exc}") from None
        canary.audited, canary.audit_answers, canary.audit_in_flight = records, answers, in_flight

    def _measure(self, arm: ArmWindow, label: str, start: float, now: float) -> None:
        if self.metrics is None:
            arm.unmeasured = {"error_rate": NO_PROMETHEUS, "latency": NO_PROMETHEUS}
            return
        try:
            arm.requests, arm.errors, arm.latencies_ms = self.metrics.arm(label, start, now)
        except PrometheusError as exc:
            arm.unmeasured = {"error_rate": f"not measured: {exc}", "latency": f"not measured: {exc}"}
