"""Over live ports: webhook sink -> Alertmanager-compatible receiver, and the monitor's /metrics."""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from creditops.monitoring.alerts import Alert, AlertDispatcher, AlertReceiver, WebhookSink
from creditops.monitoring.metrics import MonitorService
from creditops.monitoring.reference import build_reference
from creditops.monitoring.run import MonitoringRun
from creditops.monitoring.window import analyse_window, window_from_frame

DRIFT = Alert(
    {"alertname": "FeatureDriftAct", "severity": "critical", "model_version": "m@1", "feature": "x"},
    {"summary": "x: PSI 0.4", "runbook": "check x"},
    starts_at="2026-06-02T00:00:00Z",
)


def test_webhook_sink_delivers_to_the_receiver_and_duplicates_are_dropped():
    got: list[list[Alert]] = []
    with AlertReceiver(handler=got.append, token="s3cret") as receiver:
        sink = WebhookSink(receiver.url, token="s3cret")
        sink.send([DRIFT])
        sink.send([DRIFT])  # a repeat of the same alert: deduplicated by the receiver
        assert len(got) == 1 and got[0][0].labels == DRIFT.labels
        assert got[0][0].annotations["runbook"] == "check x"
        resolved = Alert(DRIFT.labels, DRIFT.annotations, "resolved", DRIFT.starts_at)
        sink.send([resolved])
        assert [a.status for a in receiver.received] == ["firing", "resolved"]
        assert httpx.get(receiver.url.replace("/alerts", "/healthz")).json()["received"] == 2


def test_receiver_refuses_bad_requests_with_4xx():
    with AlertReceiver(token="s3cret") as receiver:
        auth = {"Authorization": "Bearer s3cret"}
        r = httpx.post(receiver.url, json={"alerts": []})
        assert r.status_code == 401
        r = httpx.post(receiver.url, content=b"{not json", headers=auth)
        assert r.status_code == 400
        r = httpx.post(receiver.url, json={"alerts": [{"labels": {}}]}, headers=auth)
        assert r.status_code == 400 and "alerts[0].labels.alertname" in r.json()["error"]
        r = httpx.post(receiver.url.replace("/alerts", "/other"), json={}, headers=auth)
        assert r.status_code == 404
        assert receiver.received == []


def test_receiver_accepts_a_real_alertmanager_payload():
    payload = {
        "version": "4",
        "groupKey": '{}:{alertname="CreditOpsAUCBelowFloor"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "retraining",
        "groupLabels": {"alertname": "CreditOpsAUCBelowFloor"},
        "commonLabels": {"alertname": "CreditOpsAUCBelowFloor", "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "CreditOpsAUCBelowFloor",
                    "severity": "critical",
                    "model_version": "m@3",
                },
                "annotations": {"summary": "AUC 0.74", "runbook": "retrain"},
                "startsAt": "2026-06-02T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": "abc",
            }
        ],
    }
    with AlertReceiver() as receiver:
        r = httpx.post(receiver.url, json=payload)
        assert r.status_code == 200 and r.json() == {"accepted": 1, "duplicates": 0}
        assert receiver.received[0].name == "CreditOpsAUCBelowFloor"


def _run() -> MonitoringRun:
    rng = np.random.default_rng(0)
    feats = ["x", "y"]
    train = pd.DataFrame({"x": rng.normal(size=5000), "y": rng.normal(size=5000)})
    pd_valid = rng.beta(2, 18, 2000)
    ref = build_reference(
        train, feats, pd_valid, (rng.random(2000) < pd_valid).astype(float), 600 - 100 * pd_valid,
        np.where(pd_valid < 0.2, "approve", "decline"), model_name="m", labels=["m@1"],
    )  # fmt: skip
    p = rng.beta(2, 18, 1000)
    frame = pd.DataFrame({"x": rng.normal(1.0, 1, 1000), "y": rng.normal(size=1000), "pd": p})
    frame["score"] = 600 - 100 * p
    frame["decision"] = np.where(p < 0.2, "approve", "decline")
    w = analyse_window(ref, window_from_frame(frame, feats, "m@1", "2026-06-01", "2026-06-02"))
    w.performance = {"matured": 400, "auc": 0.71, "auc_lo": 0.66, "auc_hi": 0.76}
    return MonitoringRun(windows=[w], references={"m@1": ref}, n_decisions=1000, seconds=0.01)


def test_monitor_process_exposes_gauges_on_metrics_and_sends_alerts():
    with AlertReceiver() as receiver:
        service = MonitorService(_run, AlertDispatcher([WebhookSink(receiver.url)]), interval=3600)
        port = service.serve_metrics("127.0.0.1", 0)
        try:
            service.tick()
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        finally:
            service.stop()
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
        }
        psi_x = samples[("creditops_feature_psi", (("feature", "x"), ("model_version", "m@1")))]
        psi_y = samples[("creditops_feature_psi", (("feature", "y"), ("model_version", "m@1")))]
        assert psi_x > 0.25 > psi_y
        assert samples[("creditops_auc_matured", (("model_version", "m@1"),))] == pytest.approx(0.71)
        assert 0 < samples[("creditops_approval_rate", (("model_version", "m@1"),))] <= 1
        assert samples[("creditops_mean_pd", (("model_version", "m@1"),))] == pytest.approx(0.1, abs=0.02)
        assert samples[("creditops_monitor_alerts_firing", (("severity", "critical"),))] >= 2
        names = {a.name for a in receiver.received}
        assert {"FeatureDriftAct", "AUCBelowFloor"} <= names
