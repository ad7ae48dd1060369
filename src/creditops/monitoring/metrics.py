"""Prometheus gauges of the newest monitoring window per served version, and the monitor process.

The monitor process (``creditops monitor serve``) reads the audit log every ``interval`` seconds, runs every
judge, sets these gauges and sends alerts; ``/metrics`` on the configured host and port is what Prometheus
scrapes and what the alert rules in ``manifests/base/prometheus/rules/creditops-alerts.yaml`` and the Grafana
dashboard read. The predictor exports its own request metrics; these are the model-health ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from creditops.monitoring.alerts import AlertDispatcher, evaluate_alerts
from creditops.monitoring.run import MonitoringRun
from creditops.monitoring.window import DECISIONS

log = logging.getLogger("creditops.monitoring.metrics")
LIGHTS = {"green": 0, "amber": 1, "red": 2}


class MonitoringMetrics:
    """The monitoring gauges, in their own registry (so a test or a second monitor never collides)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        v = ["model_version"]
        self.feature_psi = Gauge(
            "creditops_feature_psi",
            "CSI of a model input vs the training reference",
            [*v, "feature"],
            registry=r,
        )
        self.feature_psi_critical = Gauge(
            "creditops_feature_psi_critical",
            "95% no-drift critical value of the feature PSI",
            [*v, "feature"],
            registry=r,
        )
        self.feature_ks_p = Gauge(
            "creditops_feature_ks_p_adjusted",
            "BH-adjusted KS p-value of a model input",
            [*v, "feature"],
            registry=r,
        )
        self.feature_missing = Gauge(
            "creditops_feature_missing_rate", "Share of missing served values", [*v, "feature"], registry=r
        )
        self.score_psi = Gauge(
            "creditops_score_psi", "PSI of the score vs the validation score distribution", v, registry=r
        )
        self.score_psi_critical = Gauge(
            "creditops_score_psi_critical", "Critical value of the score PSI", v, registry=r
        )
        self.mean_pd = Gauge("creditops_mean_pd", "Mean served PD in the newest window", v, registry=r)
        self.expected_dr = Gauge(
            "creditops_expected_default_rate", "Expected default rate of the reference", v, registry=r
        )
        self.approval_rate = Gauge(
            "creditops_approval_rate", "Share of approvals in the newest window", v, registry=r
        )
        self.decision_rate = Gauge(
            "creditops_decision_rate",
            "Share of each decision in the newest window",
            [*v, "decision"],
            registry=r,
        )
        self.window_decisions = Gauge(
            "creditops_window_decisions", "Decisions in the newest window", v, registry=r
        )
        self.auc = Gauge(
            "creditops_auc_matured",
            "AUC on matured outcomes of the newest window with enough outcomes",
            v,
            registry=r,
        )
        self.auc_lo = Gauge(
            "creditops_auc_matured_lower", "Lower bootstrap bound of the matured AUC", v, registry=r
        )
        self.matured = Gauge(
            "creditops_matured_outcomes", "Matured outcomes behind creditops_auc_matured", v, registry=r
        )
        self.validation_auc = Gauge(
            "creditops_validation_auc", "Initial validation AUC of the version", v, registry=r
        )
        self.calibration = Gauge(
            "creditops_calibration_light",
            "Calibration traffic light per grade (0 green, 1 amber, 2 red)",
            [*v, "grade"],
            registry=r,
        )
        self.air = Gauge(
            "creditops_adverse_impact_ratio",
            "Approval rate of a group over the most-approved group's",
            [*v, "attribute", "group"],
            registry=r,
        )
        self.anomalies = Gauge(
            "creditops_request_anomalies", "Request anomalies in the newest window", [*v, "kind"], registry=r
        )
        self.alerts = Gauge(
            "creditops_monitor_alerts_firing", "Alerts firing after the last run", ["severity"], registry=r
        )
        self.last_run = Gauge(
            "creditops_monitor_last_run_timestamp_seconds", "When the last monitoring run ended", registry=r
        )
        self.run_seconds = Gauge(
            "creditops_monitor_run_seconds", "Wall time of the last monitoring run", registry=r
        )
        self.run_decisions = Gauge(
            "creditops_monitor_run_decisions", "Decisions read by the last monitoring run", registry=r
        )

    def update(self, run: MonitoringRun, firing: list[Any] | None = None) -> None:
        """Set every gauge from the newest window of each version (AUC: the newest window with outcomes)."""
        for version, w in run.latest().items():
            for f in w.features:
                self.feature_psi.labels(version, f.name).set(f.psi)
                self.feature_psi_critical.labels(version, f.name).set(f.critical)
                self.feature_ks_p.labels(version, f.name).set(f.p_adjusted)
                self.feature_missing.labels(version, f.name).set(f.missing_rate)
            self.score_psi.labels(version).set(w.score_psi)
            self.score_psi_critical.labels(version).set(w.score_critical)
            self.mean_pd.labels(version).set(w.mean_pd)
            self.expected_dr.labels(version).set(w.expected_default_rate)
            self.approval_rate.labels(version).set(w.approval_rate)
            for d in DECISIONS:
                self.decision_rate.labels(version, d).set(w.decision_rates.get(d, 0.0))
            self.window_decisions.labels(version).set(w.n)
            kinds = {"identical_requests": 0, "caller_mix": 0}
            for a in w.anomalies:
                kinds[a.kind] = kinds.get(a.kind, 0) + 1
            for kind, count in kinds.items():
                self.anomalies.labels(version, kind).set(count)
            for r in w.fairness or []:
                if r["air"] == r["air"]:
                    self.air.labels(version, r["attribute"], r["group"]).set(r["air"])
            ref = run.references.get(version)
            if ref is not None:
                self.validation_auc.labels(version).set(ref.validation.auc)
        for w in run.windows:  # oldest first: the newest window with scored outcomes wins
            perf = w.performance or {}
            if "auc" in perf:
                self.auc.labels(w.model_version).set(perf["auc"])
                self.auc_lo.labels(w.model_version).set(perf.get("auc_lo", perf["auc"]))
                self.matured.labels(w.model_version).set(perf["matured"])
                for g in w.calibration or []:
                    self.calibration.labels(w.model_version, g["grade"]).set(LIGHTS[g["light"]])
        counts = {"info": 0, "warning": 0, "critical": 0}
        for a in firing or []:
            counts[a.severity] = counts.get(a.severity, 0) + 1
        for sev, c in counts.items():
            self.alerts.labels(sev).set(c)
        self.last_run.set(time.time())
        self.run_seconds.set(run.seconds)
        self.run_decisions.set(run.n_decisions)


class MonitorService:
    """Run monitoring every ``interval`` seconds, publish gauges on ``/metrics``, dispatch alerts.

    Args:
        run_once: Produces a fresh :class:`MonitoringRun` (reads the audit log window, joins outcomes).
        dispatcher: Deduplicates and sends alerts.
        config: Thresholds for :func:`evaluate_alerts`.
        interval: Seconds between runs.
        metrics: Gauges (default: a new registry).
        on_run: Called with every round's run after the alerts went out (the retraining loop).
    """

    def __init__(
        self,
        run_once: Callable[[], MonitoringRun],
        dispatcher: AlertDispatcher,
        config: Any = None,
        interval: float = 300.0,
        metrics: MonitoringMetrics | None = None,
        on_run: Callable[[MonitoringRun], object] | None = None,
    ) -> None:
        self.run_once = run_once
        self.on_run = on_run
        self.dispatcher = dispatcher
        self.config = config
        self.interval = interval
        self.metrics = metrics or MonitoringMetrics()
        self._stop = threading.Event()
        self._server: Any = None
        self.runs = 0

    def tick(self) -> MonitoringRun:
        """One monitoring round: run, alert on the newest window per version, update gauges."""
        run = self.run_once()
        alerts = [a for w in run.latest().values() for a in evaluate_alerts(w, self.config)]
        self.dispatcher.process(alerts)
        self.metrics.update(run, self.dispatcher.active)
        self.runs += 1
        if self.on_run is not None:
            self.on_run(run)
        return run

    def serve_metrics(self, host: str, port: int) -> int:
        """Start ``/metrics`` on ``host:port`` (0 = a free port); returns the port."""
        self._server, _ = start_http_server(port, addr=host, registry=self.metrics.registry)
        return int(self._server.server_address[1])

    def loop(self) -> None:
        """Tick until :meth:`stop` (a failed round is logged and retried next interval)."""
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the monitor must outlive one bad round
                log.error("monitoring round failed: %s", exc)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        """Stop the loop and the metrics server."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
