"""A monitoring run over a real SQLite audit log: references, drift, anomalies, outcomes, fairness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from governance_helpers import FEATURES, TARGET, make_bundle, make_frame

from creditops.artifact import load_bundle
from creditops.config import MonitoringConfig
from creditops.data.outcomes import join_outcomes, synthetic_outcomes
from creditops.governance.audit import AuditLog
from creditops.monitoring.reference import (
    REFERENCE_FILE,
    MonitoringReferenceError,
    ReferenceSet,
    bundle_reference,
    load_reference,
    save_reference,
    write_bundle_reference,
)
from creditops.monitoring.run import run_monitoring
from creditops.monitoring.simulate import serve_to_audit
from creditops.monitoring.source import read_audit_decisions
from predictor.testing import embed_contract

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2026-06-01", tz="UTC")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("mon")
    bundle_dir, test = make_bundle(root / "bundle", n=6000)
    embed_contract(bundle_dir)  # the decision core serves bundles with a feature contract
    train = make_frame(6000, 0).iloc[:4000]
    write_bundle_reference(bundle_dir, train[FEATURES], test, TARGET)
    bundle = load_bundle(bundle_dir)
    ref = load_reference(bundle_dir)
    apps = make_frame(6000, 42)
    apps["applicant_id"] = [f"A{i}" for i in range(len(apps))]
    # day 0-1: as trained; day 2: utilisation shifted by +0.3 (0.3 / 0.29 SD ~ 1 SD), plus a replayed request
    ts = np.array([T0 + DAY * (i // 2000) + pd.Timedelta(seconds=i % 2000) for i in range(len(apps))])
    drifted = apps.copy()
    drifted.loc[4000:, "utilisation"] = (drifted.loc[4000:, "utilisation"] + 0.3).clip(upper=1.5)
    drifted.loc[5970:, FEATURES] = drifted.loc[5970, FEATURES].to_numpy()  # 30 identical requests
    callers = np.where(np.arange(len(apps)) % 2 == 0, "branch", "web")
    url = f"sqlite:///{root / 'audit.db'}"
    with AuditLog.open(url) as audit:
        serve_to_audit(bundle, drifted, ts, audit, caller_ids=callers)
    return {"root": root, "bundle": bundle, "ref": ref, "url": url, "apps": apps, "ts": ts, "train": train}


def test_reference_is_stored_beside_the_bundle_with_its_version_label(world):
    ref = world["ref"]
    assert (world["bundle"].path / REFERENCE_FILE).is_file()
    assert ref.feature_names() == FEATURES
    label = ref.labels[0]
    assert ref.labels == [label] and label.startswith(
        f"credit-pd-test@{pd.Timestamp(world['bundle'].manifest.created_at):%Y%m%dT%H%M%SZ}-"
    )
    assert len(label.rsplit("-", 1)[1]) == 8
    assert 0.6 < ref.validation.auc < 1.0 and ref.validation.gini == pytest.approx(2 * ref.validation.auc - 1)
    assert sum(g.n for g in ref.grades) == ref.validation.n
    num_late = ref.features[FEATURES.index("num_late")]
    assert num_late.kind == "categorical" and num_late.categories[0] == 0.0
    util = ref.features[FEATURES.index("utilisation")]
    assert util.kind == "numeric" and len(util.edges) == 9


def test_reference_round_trip_and_bad_file(world, tmp_path):
    ref = world["ref"]
    assert load_reference(save_reference(ref, tmp_path / "r.json")) == ref
    (tmp_path / "bad.json").write_text('{"model_name": "x"}')
    with pytest.raises(MonitoringReferenceError, match="features"):
        load_reference(tmp_path / "bad.json")
    with pytest.raises(MonitoringReferenceError, match="no monitoring reference"):
        load_reference(tmp_path / "absent")


def test_audit_source_reads_every_decision_with_outputs(world):
    d = read_audit_decisions(world["url"], FEATURES)
    assert len(d) == 6000
    assert d.versions() == world["ref"].labels
    assert set(d.decision) <= {"approve", "review", "decline"}
    assert d.applicant_id.tolist() == world["apps"]["applicant_id"].tolist()  # from the by-id inputs
    assert np.isfinite(d.pd).all() and ((d.pd >= 0) & (d.pd <= 1)).all()
    assert set(d.reason) - {""} <= set(FEATURES)
    bundle = world["bundle"]
    assert np.allclose(d.pd[:100], bundle.predict_pd(d.X[:100]), atol=1e-6)
    part = read_audit_decisions(world["url"], FEATURES, start=T0 + DAY, end=T0 + 2 * DAY)
    assert len(part) == 2000


def test_monitoring_refuses_a_version_without_reference(world):
    d = read_audit_decisions(world["url"], FEATURES)
    with pytest.raises(MonitoringReferenceError, match="no monitoring reference"):
        run_monitoring(d, ReferenceSet([]))


def test_run_flags_the_drifted_feature_only_in_the_drifted_window(world):
    d = read_audit_decisions(world["url"], FEATURES)
    run = run_monitoring(d, ReferenceSet([world["ref"]]), MonitoringConfig(burst_min_identical=20))
    assert [w.n for w in run.windows] == [2000, 2000, 2000]
    day0, day1, day2 = run.windows
    assert day0.drifted() == [] and day1.drifted() == []
    assert day2.drifted("act") == ["utilisation"]
    util = day2.features[FEATURES.index("utilisation")]
    assert util.ks_drifted and util.psi > util.critical
    assert day2.score_level != "ok"  # the score moved with it
    assert day0.score_level in ("ok", "significant")
    bursts = [a for a in day2.anomalies if a.kind == "identical_requests"]
    assert len(bursts) == 1 and bursts[0].count == 30
    assert not [a for a in day0.anomalies if a.kind == "identical_requests"]
    assert day2.approval_rate < day0.approval_rate
    assert 0.5 < day0.mean_pd_ratio < 1.5


def test_caller_far_off_its_mix_is_an_anomaly(world):
    d = read_audit_decisions(world["url"], FEATURES)
    # the "web" caller's requests on day 1 become the riskiest applicants: its decline rate jumps
    web = (d.caller_id == "web") & (d.ts >= np.datetime64((T0 + DAY).tz_localize(None)))
    d.decision = d.decision.copy()
    d.decision[web & (d.ts < np.datetime64((T0 + 2 * DAY).tz_localize(None)))] = "decline"
    run = run_monitoring(d, ReferenceSet([world["ref"]]))
    day1 = run.windows[1]
    mix = [a for a in day1.anomalies if a.kind == "caller_mix"]
    assert [a.caller_id for a in mix] == ["web"]
    assert "its history" in mix[0].detail
    assert not [a for a in run.windows[0].anomalies if a.kind == "caller_mix"]


def test_outcomes_give_performance_calibration_and_fairness(world):
    d = read_audit_decisions(world["url"], FEATURES)
    decisions = pd.DataFrame({"prediction_id": d.prediction_id, "ts": d.ts, "pd": d.pd})
    outcomes = synthetic_outcomes(decisions, seed=1, horizon_days=30, delay_days=0)
    joined = join_outcomes(d.prediction_id, d.applicant_id, d.ts, outcomes)
    assert joined["defaulted"].notna().all()
    protected = world["apps"][["sex", "age_band"]]
    run = run_monitoring(d, ReferenceSet([world["ref"]]), outcomes=joined, protected=protected)
    w = run.windows[0]
    perf = w.performance
    assert perf["matured"] == 2000
    assert perf["auc_lo"] <= perf["auc"] <= perf["auc_hi"]
    assert abs(perf["auc"] - world["ref"].validation.auc) < 0.08  # outcomes drawn from the model's own PDs
    assert {r["light"] for r in w.calibration} <= {"green", "amber", "red"}
    assert sum(r["n"] for r in w.calibration) == 2000
    groups = {(r["attribute"], r["group"]) for r in w.fairness}
    assert ("sex", "female") in groups and ("sex", "male") in groups
    assert max(r["air"] for r in w.fairness if r["attribute"] == "sex") == pytest.approx(1.0)
    assert run.vintages is not None and len(run.vintages) == 1


def test_concept_drift_in_outcomes_lowers_the_matured_auc(world):
    d = read_audit_decisions(world["url"], FEATURES)
    decisions = pd.DataFrame({"prediction_id": d.prediction_id, "ts": d.ts, "pd": d.pd})
    outcomes = synthetic_outcomes(decisions, seed=2, horizon_days=30, concept_drift=0.9, drift_from=T0 + DAY)
    joined = join_outcomes(d.prediction_id, d.applicant_id, d.ts, outcomes)
    run = run_monitoring(d, ReferenceSet([world["ref"]]), outcomes=joined)
    before, after = run.windows[0].performance["auc"], run.windows[1].performance["auc"]
    assert after < before - 0.1
    assert run.windows[1].performance["auc_hi"] < world["ref"].validation.auc


def test_bundle_reference_labels_follow_the_bundle(world):
    ref = bundle_reference(world["bundle"], world["train"][FEATURES], make_frame(500, 9), TARGET)
    assert ref.labels == world["ref"].labels


def test_report_has_every_section_with_plots(world, tmp_path):
    from creditops.monitoring.report import latency_from_metrics, render_report

    d = read_audit_decisions(world["url"], FEATURES)
    decisions = pd.DataFrame({"prediction_id": d.prediction_id, "ts": d.ts, "pd": d.pd})
    joined = join_outcomes(
        d.prediction_id, d.applicant_id, d.ts, synthetic_outcomes(decisions, horizon_days=30)
    )
    run = run_monitoring(d, ReferenceSet([world["ref"]]), outcomes=joined, protected=world["apps"][["sex"]])
    metrics_text = (
        "# TYPE creditops_predictor_request_seconds histogram\n"
        'creditops_predictor_request_seconds_bucket{model="m",protocol="v1",le="0.001"} 50\n'
        'creditops_predictor_request_seconds_bucket{model="m",protocol="v1",le="0.005"} 95\n'
        'creditops_predictor_request_seconds_bucket{model="m",protocol="v1",le="0.01"} 100\n'
        'creditops_predictor_request_seconds_bucket{model="m",protocol="v1",le="+Inf"} 100\n'
        'creditops_predictor_request_seconds_count{model="m",protocol="v1"} 100\n'
        'creditops_predictor_request_seconds_sum{model="m",protocol="v1"} 0.2\n'
    )
    latency = latency_from_metrics(metrics_text)
    assert latency == {"m": {"p50": 0.001, "p90": 0.005, "p99": 0.01}}
    html = render_report(run, tmp_path / "monitoring.html", latency=latency).read_text()
    for section in (
        "Drift per feature over time", "Score distribution", "Approval / review / decline rates",
        "Discrimination as outcomes mature", "Calibration per grade", "Fairness over time", "Vintage curves",
        "Predictor latency", "FeatureDriftAct",
    ):  # fmt: skip
        assert section in html, section
    assert html.count("data:image/png;base64,") >= 8


def test_audit_source_sorts_late_arrivals_and_reads_string_ids(tmp_path):
    from creditops.governance.audit import AuditRecord

    url = f"sqlite:///{tmp_path / 'a.db'}"
    with AuditLog.open(url) as audit:
        audit.append(
            AuditRecord(
                prediction_id=f"p{i}", model_name="m", model_version="m@1",
                inputs={"applicant_id": f"A-{i}", "utilisation": 0.1 * i},
                output={"pd": 0.1, "score": 600.0}, explanation=[], decision="approve",
                ts=f"2026-06-0{9 - i}T00:00:00.000000Z",
            )
            for i in range(3)
        )  # fmt: skip
    d = read_audit_decisions(url, ["utilisation", "income_k"])
    assert d.prediction_id.tolist() == ["p2", "p1", "p0"]  # oldest first, whatever the insertion order
    assert d.applicant_id.tolist() == ["A-2", "A-1", "A-0"]
    assert np.isnan(d.X[:, 1]).all()  # a field the records lack reads as missing
    assert d.reason.tolist() == ["", "", ""]
