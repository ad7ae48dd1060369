"""Alerts from monitoring windows, deduplicated, to sinks: log, webhook, and an Alertmanager-style receiver.

Each judge that fires becomes an :class:`Alert` with Alertmanager's shape (``labels`` identify it: alertname,
severity, model_version and e.g. feature; ``annotations`` carry the summary and a runbook line), so the same
alert can come from this process or from Prometheus' rules through Alertmanager. The :class:`AlertDispatcher`
deduplicates by fingerprint (the labels): an alert is sent when it starts firing, again only after
``repeat_seconds``, and once as ``resolved`` when it stops. :class:`AlertReceiver` is an HTTP endpoint that
accepts Alertmanager webhook payloads (version 4) and hands them, deduplicated, to a callback, e.g. the
retraining trigger.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from creditops.config import MonitoringConfig
from creditops.monitoring.window import WindowReport

log = logging.getLogger("creditops.monitoring.alerts")

SEVERITIES = ("info", "warning", "critical")
MAX_BODY = 1 << 20

#: What to do first, per alert: the runbook line every alert carries.
RUNBOOK = {
    "FeatureDriftAct": "Input moved past PSI 0.25: check the upstream source and the feature pipeline; "
    "if the shift is real, retrain on recent data.",
    "FeatureDriftWarn": "Moderate input shift (PSI 0.10-0.25): watch the next windows, compare with "
    "marketing or channel changes.",
    "ScoreDrift": "Score distribution moved: check feature drift alerts first, then the approval rate.",
    "MeanPDDrift": "Mean PD far from the expected default rate: check population mix and calibration.",
    "DataQuality": "Served inputs have missing, out-of-range or unseen values: check the feature store "
    "and the caller's request validation.",
    "RequestAnomaly": "Identical-request burst or a caller off its usual mix: check for replays, scraping "
    "or a broken client.",
    "AUCBelowFloor": "Discrimination on matured outcomes below the floor: start the retraining pipeline, "
    "review the challenger before promotion.",
    "CalibrationRed": "Default rate far above the predicted PD in a grade (Jeffreys p < 0.1%): "
    "recalibrate or retrain; review the grade's pricing.",
    "CalibrationAmber": "A grade's default rate is above its PD (Jeffreys p < 5%): watch the next window.",
    "AdverseImpact": "A group's approval rate is below 80% of the most-approved group's: run the fairness "
    "review (a screening signal, not a legal finding).",
    "EqualOpportunityGap": "Good applicants of one group are approved less often: fairness review.",
}


@dataclass(frozen=True)
class Alert:
    """One alert in Alertmanager's shape."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    status: str = "firing"
    starts_at: str = ""
    ends_at: str = ""

    @property
    def name(self) -> str:
        """``alertname``."""
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str:
        """``info`` / ``warning`` / ``critical``."""
        return self.labels.get("severity", "warning")

    @property
    def fingerprint(self) -> str:
        """Stable id of the alert: a hash of its sorted labels (as Alertmanager does)."""
        text = json.dumps(sorted(self.labels.items()), separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_alertmanager(self) -> dict[str, Any]:
        """The alert as it appears in an Alertmanager webhook payload."""
        return {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": self.starts_at,
            "endsAt": self.ends_at or "0001-01-01T00:00:00Z",
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_alertmanager(cls, item: Mapping[str, Any]) -> Alert:
        """Parse one alert of a webhook payload.

        Raises:
            ValueError: ``labels`` missing or not string-valued, or no ``alertname``.
        """
        labels = item.get("labels")
        if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
            raise ValueError("alerts[].labels: must be an object of strings")
        if "alertname" not in labels:
            raise ValueError("alerts[].labels.alertname: missing")
        annotations = item.get("annotations") or {}
        if not isinstance(annotations, Mapping):
            raise ValueError("alerts[].annotations: must be an object")
        status = item.get("status", "firing")
        if status not in ("firing", "resolved"):
            raise ValueError("alerts[].status: must be firing or resolved")
        return cls(
            dict(labels),
            {str(k): str(v) for k, v in annotations.items()},
            status,
            str(item.get("startsAt", "")),
            str(item.get("endsAt", "")),
        )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _alert(
    name: str, severity: str, summary: str, runbook_url: str, window: WindowReport, **labels: str
) -> Alert:
    return Alert(
        {"alertname": name, "severity": severity, "model_version": window.model_version, **labels},
        {
            "summary": summary,
            "runbook": RUNBOOK[name],
            "runbook_url": runbook_url,
            "window": f"{window.start} .. {window.end}",
        },
        starts_at=window.end or _now(),
    )


def evaluate_alerts(window: WindowReport, config: MonitoringConfig | None = None) -> list[Alert]:
    """Every alert the window raises (pure: the same window always gives the same alerts).

    Args:
        window: A monitored window.
        config: Thresholds (default :class:`MonitoringConfig`).
    """
    cfg = config or MonitoringConfig()
    url = cfg.runbook_url
    out: list[Alert] = []
    for f in window.features:
        if f.level in ("warn", "act"):
            name = "FeatureDriftAct" if f.level == "act" else "FeatureDriftWarn"
            out.append(
                _alert(
                    name, "critical" if f.level == "act" else "warning",
                    f"{f.name}: PSI {f.psi:.3f} above {cfg.psi_act if f.level == 'act' else cfg.psi_warn} "
                    f"and its critical value {f.critical:.4f} (KS adj. p {f.p_adjusted:.2g})",
                    url, window, feature=f.name,
                )
            )  # fmt: skip
        problems = []
        if f.missing_rate > f.reference_missing_rate + 0.05:
            problems.append(f"missing {f.missing_rate:.1%} (reference {f.reference_missing_rate:.1%})")
        if f.out_of_range_rate > 0.01:
            problems.append(f"out of range {f.out_of_range_rate:.1%}")
        if f.unseen_rate > 0.01:
            problems.append(f"unseen categories {f.unseen_rate:.1%}")
        if problems:
            out.append(
                _alert(
                    "DataQuality", "warning", f"{f.name}: " + ", ".join(problems), url, window, feature=f.name
                )
            )
    if window.score_level in ("warn", "act"):
        out.append(
            _alert(
                "ScoreDrift", "critical" if window.score_level == "act" else "warning",
                f"score PSI {window.score_psi:.3f} (critical value {window.score_critical:.4f})", url, window,
            )
        )  # fmt: skip
    ratio = window.mean_pd_ratio
    if ratio == ratio and abs(ratio - 1.0) > cfg.mean_pd_tolerance:
        out.append(
            _alert(
                "MeanPDDrift", "warning",
                f"mean PD {window.mean_pd:.4f} vs expected default rate {window.expected_default_rate:.4f}",
                url, window,
            )
        )  # fmt: skip
    # one alert per kind and caller (its fingerprint), however many bursts: the largest is the example
    groups: dict[tuple[str, str], list[Any]] = {}
    for a in window.anomalies:
        groups.setdefault((a.kind, a.caller_id), []).append(a)
    for (kind, caller), found in groups.items():
        worst = max(found, key=lambda a: a.count)
        more = f" ({len(found)} of them in this window; the largest shown)" if len(found) > 1 else ""
        out.append(_alert("RequestAnomaly", "warning", f"{kind}: {worst.detail}{more}", url, window,
                          kind=kind, caller=caller))  # fmt: skip
    perf = window.performance or {}
    if perf.get("matured", 0) >= cfg.min_outcomes and perf.get("auc", float("nan")) < cfg.auc_floor:
        out.append(
            _alert(
                "AUCBelowFloor", "critical",
                f"AUC {perf['auc']:.3f} [{perf['auc_lo']:.3f}, {perf['auc_hi']:.3f}] on {perf['matured']} "
                f"matured outcomes < {cfg.auc_floor} (validation {perf.get('validation_auc', 0.0):.3f})",
                url, window,
            )
        )  # fmt: skip
    for g in window.calibration or []:
        if g["light"] in ("red", "amber"):
            name = "CalibrationRed" if g["light"] == "red" else "CalibrationAmber"
            out.append(
                _alert(
                    name, "critical" if g["light"] == "red" else "warning",
                    f"grade {g['grade']}: {g['defaults']}/{g['n']} defaults ({g['default_rate']:.2%}) vs PD "
                    f"{g['mean_pd']:.2%}, Jeffreys p {g['jeffreys_p']:.2g}",
                    url, window, grade=g["grade"],
                )
            )  # fmt: skip
    for r in window.fairness or []:
        if r["air"] == r["air"] and r["air"] < cfg.air_floor:
            out.append(
                _alert(
                    "AdverseImpact", "warning",
                    f"{r['attribute']}={r['group']}: approval {r['approval_rate']:.1%}, AIR {r['air']:.2f}",
                    url, window, attribute=r["attribute"], group=r["group"],
                )
            )  # fmt: skip
        if r["eo_gap"] == r["eo_gap"] and r["eo_gap"] > cfg.eo_gap:
            out.append(
                _alert(
                    "EqualOpportunityGap", "warning",
                    f"{r['attribute']}={r['group']}: good-applicant approval gap {r['eo_gap']:.1%}",
                    url, window, attribute=r["attribute"], group=r["group"],
                )
            )  # fmt: skip
    return out


# --------------------------------------------------------------------------------------------------------
# sinks and deduplication


class AlertSink(Protocol):
    """Somewhere alerts go."""

    def send(self, alerts: Sequence[Alert]) -> None:
        """Deliver a batch (raise on failure: the dispatcher logs it and retries on the next round)."""
        ...


class LogSink:
    """Alerts as log lines (WARNING for firing, INFO for resolved)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or log

    def send(self, alerts: Sequence[Alert]) -> None:
        """Log each alert on one line."""
        for a in alerts:
            level = logging.INFO if a.status == "resolved" else logging.WARNING
            self.logger.log(
                level, "[%s] %s %s %s | runbook: %s", a.severity.upper(), a.status, a.name,
                a.annotations.get("summary", ""), a.annotations.get("runbook", ""),
            )  # fmt: skip


class WebhookSink:
    """POST alerts as an Alertmanager webhook payload (version 4) to a URL."""

    def __init__(
        self, url: str, token: str | None = None, timeout: float = 5.0, receiver: str = "creditops"
    ) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout
        self.receiver = receiver

    def send(self, alerts: Sequence[Alert]) -> None:
        """One POST per batch.

        Raises:
            httpx.HTTPError: the receiver is unreachable or answered with an error status.
        """
        import httpx

        if not alerts:
            return
        firing = any(a.status == "firing" for a in alerts)
        body = {
            "version": "4",
            "groupKey": f"creditops:{self.receiver}",
            "status": "firing" if firing else "resolved",
            "receiver": self.receiver,
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "",
            "truncatedAlerts": 0,
            "alerts": [a.to_alertmanager() for a in alerts],
        }
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        httpx.post(self.url, json=body, headers=headers, timeout=self.timeout).raise_for_status()


@dataclass
class AlertDispatcher:
    """Deduplicates alerts by fingerprint and sends starts, repeats and resolutions to every sink.

    Args:
        sinks: Where alerts go.
        repeat_seconds: A still-firing alert is re-sent after this long (Alertmanager's repeat_interval).
        clock: Seconds since the epoch (injectable for tests).
    """

    sinks: Sequence[AlertSink]
    repeat_seconds: float = 4 * 3600.0
    clock: Callable[[], float] = time.time
    _active: dict[str, tuple[Alert, float]] = field(default_factory=dict)

    def process(self, alerts: Iterable[Alert]) -> list[Alert]:
        """Send what is new, due for repeat or resolved; returns what was sent."""
        now = self.clock()
        current = {a.fingerprint: a for a in alerts}
        out: list[Alert] = []
        for fp, a in current.items():
            prev = self._active.get(fp)
            if prev is None or now - prev[1] >= self.repeat_seconds:
                out.append(a)
                self._active[fp] = (a, now)
        for fp in [fp for fp in self._active if fp not in current]:
            a, _ = self._active.pop(fp)
            out.append(Alert(a.labels, a.annotations, "resolved", a.starts_at, _now()))
        for sink in self.sinks:
            try:
                sink.send(out)
            except Exception as exc:  # noqa: BLE001 - one broken sink must not silence the others
                log.error("alert sink %s failed: %s", type(sink).__name__, exc)
        return out

    @property
    def active(self) -> list[Alert]:
        """Alerts currently firing."""
        return [a for a, _ in self._active.values()]


# --------------------------------------------------------------------------------------------------------
# receiver


class AlertReceiver:
    """An Alertmanager-compatible webhook receiver: ``POST /alerts`` with a version-4 payload.

    Alerts are deduplicated by (fingerprint, status) and handed to ``handler`` (e.g. the retraining trigger)
    in arrival order; ``GET /healthz`` answers ok. With ``token`` set, a POST without
    ``Authorization: Bearer <token>`` is refused (401). Binds ``host`` (default 127.0.0.1); port 0 = any free.
    """

    def __init__(
        self,
        handler: Callable[[list[Alert]], None] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
    ) -> None:
        self.handler = handler
        self.token = token
        self.received: list[Alert] = []
        self._seen: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                log.debug("receiver: " + format, *args)

            def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                if self.path == "/healthz":
                    self._reply(HTTPStatus.OK, {"status": "ok", "received": len(receiver.received)})
                else:
                    self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})

            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                if self.path != "/alerts":
                    self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})
                    return
                if receiver.token is not None:
                    given = self.headers.get("Authorization", "")
                    if not hmac.compare_digest(given, f"Bearer {receiver.token}"):
                        self._reply(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"})
                        return
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                except ValueError:
                    length = -1
                if length < 0 or length > MAX_BODY:
                    self._reply(
                        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body must be <= {MAX_BODY} bytes"}
                    )
                    return
                try:
                    payload = json.loads(self.rfile.read(length) or b"null")
                    alerts = parse_webhook(payload)
                except ValueError as exc:
                    self._reply(HTTPStatus.BAD_REQUEST, {"error": str(exc).splitlines()[0]})
                    return
                fresh = receiver._accept(alerts)
                self._reply(HTTPStatus.OK, {"accepted": len(fresh), "duplicates": len(alerts) - len(fresh)})

        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port/alerts``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/alerts"

    def _accept(self, alerts: list[Alert]) -> list[Alert]:
        with self._lock:
            fresh = []
            for a in alerts:
                key = (a.fingerprint, a.status, a.starts_at)
                if key not in self._seen:
                    self._seen.add(key)
                    fresh.append(a)
            self.received.extend(fresh)
        if fresh and self.handler is not None:
            self.handler(fresh)
        return fresh

    def start(self) -> AlertReceiver:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="alert-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> AlertReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def parse_webhook(payload: Any) -> list[Alert]:
    """Alerts of an Alertmanager webhook payload.

    Raises:
        ValueError: not an object, ``version`` other than "4", or a malformed ``alerts`` entry (named).
    """
    if not isinstance(payload, Mapping):
        raise ValueError("body: must be a JSON object (Alertmanager webhook payload)")
    if str(payload.get("version", "4")) != "4":
        raise ValueError(
            f"version: only Alertmanager webhook version 4 is accepted, got {payload.get('version')!r}"
        )
    items = payload.get("alerts")
    if not isinstance(items, list):
        raise ValueError("alerts: must be a list")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ValueError(f"alerts[{i}]: must be an object")
        try:
            out.append(Alert.from_alertmanager(item))
        except ValueError as exc:
            raise ValueError(str(exc).replace("alerts[]", f"alerts[{i}]")) from None
    return out
