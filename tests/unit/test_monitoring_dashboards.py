"""The Grafana dashboard and the alert rules only query metrics that creditops exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from creditops.monitoring.metrics import MonitoringMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "manifests" / "base" / "grafana" / "creditops-dashboard.json"
RULES = ROOT / "manifests" / "base" / "prometheus" / "rules" / "creditops-alerts.yaml"
_METRIC = re.compile(r"\bcreditops_[a-z0-9_]+")


def exported() -> set[str]:
    """Every sample name creditops exports: the monitor's gauges and the predictor's metrics."""
    from predictor import metrics as predictor_metrics  # kserve/ is on the test path

    names = {fam.name for fam in MonitoringMetrics().registry.collect()}
    for metric in (predictor_metrics.LATENCY,):
        names |= {f"{metric._name}_bucket", f"{metric._name}_count", f"{metric._name}_sum"}  # noqa: SLF001
    for metric in (predictor_metrics.REQUESTS, predictor_metrics.ERRORS, predictor_metrics.DECISIONS):
        names.add(f"{metric._name}_total")  # noqa: SLF001
    names.add(predictor_metrics.MODEL_INFO._name)  # noqa: SLF001
    return names


def unknown_metrics(exprs: list[str], known: set[str]) -> set[str]:
    """Metric names used in ``exprs`` that nothing exports."""
    return {m for e in exprs for m in _METRIC.findall(e)} - known


def test_dashboard_queries_exported_metrics_only():
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(dash["panels"]) >= 10
    assert unknown_metrics(exprs, exported()) == set()
    titles = " ".join(p["title"] for p in dash["panels"])
    for topic in ("drift", "Score PSI", "Decision rates", "AUC", "Calibration", "Adverse impact", "latency"):
        assert topic in titles


def test_alert_rules_query_exported_metrics_only():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    exprs = [r["expr"] for g in groups for r in g["rules"]]
    assert unknown_metrics(exprs, exported()) == set()


def test_a_misspelt_metric_is_reported():
    assert unknown_metrics(["creditops_feature_psy > 0.25"], exported()) == {"creditops_feature_psy"}
