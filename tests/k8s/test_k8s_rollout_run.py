"""``creditops rollout kube run``: a judged canary on the fake KServe API server, fed by a real audit log.

Live "traffic" is a thread appending audit records of both versions (labelled ``credit-pd@N`` as the
predictor labels them) to a real SQLite audit log with the current time, while the CLI drives the canary
with the real ``kubernetes`` client. Scores come from a fixed stratified sample of a Beta distribution, so
two arms with "the same distribution" have identical windows (no flaky false alarms) and a shifted canary
is shifted by construction. Errors and latency come from a Prometheus HTTP API stand-in on a live port
(``fake_prometheus.py``). The tests assert the exact ISVC patches, the exit code, the deployment history and
why it rolled back.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import NAME
from fake_prometheus import Arm, FakePrometheus, running_prometheus
from scipy import stats
from test_k8s_kserve_target import NEW, OLD, deploy, patches
from test_k8s_rollout_cli import cli, history_rows  # noqa: F401 - the CLI fixture, reused

from creditops.deploy.history import DeploymentHistory
from creditops.deploy.kube_analysis import KubeWindow, PrometheusError, PrometheusMetrics, latency_samples
from creditops.deploy.kubernetes import PREVIOUS_ANNOTATION
from creditops.deploy.release import approve
from creditops.governance.audit import AuditLog, AuditRecord

CANARY_CFG = {
    "steps": [10, 50],
    "interval_s": 0.5,
    "check_every_s": 0.1,
    "threshold": 2,
    "progress_deadline_s": 2.0,
}
GOOD, SHIFTED = (2.0, 12.0), (5.0, 8.0)  # Beta(a, b) of the PDs: mean 0.14 vs 0.38
PATCHES = {
    "Knative": {
        "promote": [
            {"spec": {"predictor": {"canaryTrafficPercent": 10, "model": {"storageUri": NEW}}}},
            {"spec": {"predictor": {"canaryTrafficPercent": 50}}},
            {"spec": {"predictor": {"canaryTrafficPercent": None}}},
        ],
        "rollback": [
            {"spec": {"predictor": {"canaryTrafficPercent": 10, "model": {"storageUri": NEW}}}},
            {"spec": {"predictor": {"canaryTrafficPercent": 0}}},
        ],
    },
    "Standard": {
        "promote": [
            {"spec": {"canary": [{"trafficPercent": 10, "predictor": {"name": "canary", "model": {
                "modelFormat": {"name": "xgboost"}, "storageUri": NEW}}}]}},
            {"spec": {"canary": [{"trafficPercent": 50, "predictor": {"name": "canary", "model": {
                "modelFormat": {"name": "xgboost"}, "storageUri": NEW}}}]}},
            {"metadata": {"annotations": {PREVIOUS_ANNOTATION: json.dumps(
                {"name": "primary", "model": {"modelFormat": {"name": "xgboost"}, "storageUri": OLD}},
                sort_keys=True)}},
             "spec": {"predictor": {"name": "canary", "model": {"storageUri": NEW}}, "canary": []}},
        ],
        "rollback": [
            {"spec": {"canary": [{"trafficPercent": 10, "predictor": {"name": "canary", "model": {
                "modelFormat": {"name": "xgboost"}, "storageUri": NEW}}}]}},
            {"spec": {"canary": []}},
        ],
    },
}  # fmt: skip


def scores(shape: tuple[float, float], n: int = 40) -> np.ndarray:
    """A fixed stratified sample of ``Beta(*shape)`` (the same ``n`` quantiles every batch)."""
    return stats.beta.ppf((np.arange(n) + 0.5) / n, *shape)


def decision(pd_: float) -> str:
    return "approve" if pd_ < 0.12 else ("decline" if pd_ > 0.3 else "review")


@contextmanager
def traffic(
    url: str,
    arms: dict[str, tuple[float, float]],
    every_s: float = 0.05,
    counted: FakePrometheus | None = None,
    unaudited: int = 0,
) -> Iterator[None]:
    """Append one batch of audit records per arm every ``every_s`` (current time) until the block ends.

    With ``counted``, each arm's answers are counted there after its records are written (as the predictor
    counts decisions after the audit write); ``unaudited`` answers per batch have no record (a broken log).
    """
    stop = threading.Event()
    batches = {label: scores(shape) for label, shape in arms.items()}

    def write() -> None:
        with AuditLog.open(url) as audit:
            while not stop.is_set():
                audit.append(
                    AuditRecord(
                        prediction_id=uuid.uuid4().hex, model_name="credit-pd", model_version=label,
                        inputs={"applicant_id": f"A-{i}"}, output={"pd": float(p), "score": 600.0},
                        explanation=[], decision=decision(float(p)), caller_id="client",
                    )
                    for label, batch in batches.items()
                    for i, p in enumerate(batch)
                )  # fmt: skip
                for label, batch in batches.items():
                    if counted is not None and label in counted.arms:
                        counted.arms[label].count(len(batch) + unaudited)
                stop.wait(every_s)

    AuditLog.open(url).close()  # the log exists before the rollout looks for it
    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


@pytest.fixture
def setup(cli: Any, tmp_path: Path) -> dict[str, Any]:  # noqa: F811 - the reused fixture
    """The CLI config with tiny canary intervals, its audit log URL and history."""
    work = tmp_path / "work"
    config = {"workdir": str(work), "deploy": {"canary": CANARY_CFG}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return {
        "audit": f"sqlite:///{work / 'audit.db'}",
        "history": DeploymentHistory(f"sqlite:///{cli.history}"),
    }


@pytest.fixture
def prometheus() -> Iterator[tuple[FakePrometheus, str]]:
    state = FakePrometheus(arms={"credit-pd@1": Arm(), "credit-pd@2": Arm()})
    with running_prometheus(state) as url:
        yield state, url


def events(path: Path) -> list[tuple[str, ...]]:
    return [(r[1], r[2], r[3]) for r in history_rows(path) if r[2] != "approved"]


def details(setup: dict[str, Any], event: str) -> dict[str, Any]:
    return next(e.details for e in setup["history"].events("prod") if e.event == event)


RUN = ("rollout", "kube", "run", "--isvc", NAME, "--version", "2", "--storage-uri", NEW)


@pytest.mark.parametrize("mode", ["Knative", "Standard"])
def test_good_canary_is_stepped_and_promoted(
    cli: Any,  # noqa: F811
    api: Any,
    cluster: Any,
    setup: dict[str, Any],
    prometheus: tuple[FakePrometheus, str],
    mode: str,
) -> None:
    emulator, _ = cluster
    deploy(api, emulator, mode)
    approve(setup["history"], "credit-pd", "2", actor="alice", reason="passed staging")
    with traffic(setup["audit"], {"credit-pd@1": GOOD, "credit-pd@2": GOOD}, counted=prometheus[0]):
        code, out, err = cli(*RUN, "--champion-version", "1", "--prometheus-url", prometheus[1], "--by", "ci")
    assert code == 0, out + err
    assert patches(emulator) == PATCHES[mode]["promote"]
    assert events(cli.history) == [
        ("2", "canary_started", ""), ("2", "step", ""), ("2", "promoted", "2")
    ]  # fmt: skip  # approved before: no wait
    promoted = details(setup, "promoted")
    assert promoted["approved_by"] == "alice" and promoted["analysis"] == {"audit": True, "prometheus": True}
    assert {v["name"]: v["status"] for v in promoted["verdicts"]} == {
        "ready": "pass", "error_rate": "pass", "latency": "pass", "score_psi": "pass",
        "approval_shift": "pass", "decline_shift": "pass", "audit": "pass",
    }  # fmt: skip
    assert details(setup, "step")["percent"] == 50
    # both arms were measured, on the InferenceService's own series
    assert any('model_version="credit-pd@2"' in q for q in prometheus[0].queries)
    assert any('model_version="credit-pd@1"' in q for q in prometheus[0].queries)


def test_shifted_scores_are_rolled_back_by_the_judges(
    cli: Any,  # noqa: F811
    api: Any,
    cluster: Any,
    setup: dict[str, Any],
    prometheus: tuple[FakePrometheus, str],
) -> None:
    emulator, _ = cluster
    deploy(api, emulator, "Knative")
    approve(setup["history"], "credit-pd", "2", actor="alice", reason="passed staging")
    with traffic(setup["audit"], {"credit-pd@1": GOOD, "credit-pd@2": SHIFTED}, counted=prometheus[0]):
        code, out, err = cli(*RUN, "--champion-version", "1", "--prometheus-url", prometheus[1])
    assert code == 1, out + err
    assert patches(emulator) == PATCHES["Knative"]["rollback"]
    assert events(cli.history) == [("2", "canary_started", ""), ("2", "rolled_back", "1")]
    (reason,) = [r[5] for r in history_rows(cli.history) if r[2] == "rolled_back"]
    assert reason.startswith("2 failed check(s): ") and "score_psi (PSI " in reason, reason
    verdicts = {v["name"]: v for v in details(setup, "rolled_back")["verdicts"]}
    assert verdicts["score_psi"]["status"] == "fail" and verdicts["score_psi"]["value"] > 0.1
    assert verdicts["error_rate"]["status"] == "pass"  # only the scores are off


@pytest.mark.parametrize("mode", ["Knative", "Standard"])
def test_without_prometheus_errors_and_latency_are_inconclusive_and_the_deadline_rolls_back(
    cli: Any,  # noqa: F811
    api: Any,
    cluster: Any,
    setup: dict[str, Any],
    mode: str,
) -> None:
    emulator, _ = cluster
    deploy(api, emulator, mode)
    # the champion comes from the history: v1 was promoted before
    setup["history"].record("prod", "credit-pd", "1", "promoted", serving="1", actor="bob")
    approve(setup["history"], "credit-pd", "2", actor="alice", reason="passed staging")
    with traffic(setup["audit"], {"credit-pd@1": GOOD, "credit-pd@2": GOOD}):
        code, out, err = cli(*RUN, "--audit-url", setup["audit"])
    assert code == 1, out + err
    assert patches(emulator) == PATCHES[mode]["rollback"]  # never stepped, never promoted
    assert events(cli.history)[-2:] == [("2", "canary_started", ""), ("2", "rolled_back", "1")]
    (reason,) = [r[5] for r in history_rows(cli.history) if r[2] == "rolled_back"]
    assert "progress deadline" in reason
    verdicts = {v["name"]: v for v in details(setup, "rolled_back")["verdicts"]}
    for name in ("error_rate", "latency", "audit"):
        assert verdicts[name]["status"] == "inconclusive"
        assert "no --prometheus-url" in verdicts[name]["detail"]
    assert verdicts["score_psi"]["status"] == "pass"  # the audit log alone was judged, and passed
    assert "inconclusive" in out and "no --prometheus-url" in out


@pytest.mark.parametrize(
    ("canary", "judge"),
    [
        (Arm(rps=100.0, err_rps=5.0), "error_rate"),
        (Arm(per_bucket={0.025: 20.0, 0.05: 50.0, 0.1: 30.0}), "latency"),
        (Arm(), "audit"),  # answers without their records (``unaudited`` below)
    ],
    ids=["5xx", "slow", "unaudited"],
)
def test_prometheus_errors_latency_or_missing_audit_records_roll_back(
    cli: Any,  # noqa: F811
    api: Any,
    cluster: Any,
    setup: dict[str, Any],
    prometheus: tuple[FakePrometheus, str],
    canary: Arm,
    judge: str,
) -> None:
    emulator, _ = cluster
    deploy(api, emulator, "Standard")
    prometheus[0].arms["credit-pd@2"] = canary
    unaudited = 1 if judge == "audit" else 0  # one row per batch answered with no audit record
    with traffic(
        setup["audit"], {"credit-pd@1": GOOD, "credit-pd@2": GOOD}, counted=prometheus[0], unaudited=unaudited
    ):
        code, out, err = cli(*RUN, "--champion-version", "1", "--prometheus-url", prometheus[1])
    assert code == 1, out + err
    assert patches(emulator) == PATCHES["Standard"]["rollback"]
    (reason,) = [r[5] for r in history_rows(cli.history) if r[2] == "rolled_back"]
    assert f"{judge} (" in reason and "failed check(s)" in reason, reason
    verdicts = {v["name"]: v["status"] for v in details(setup, "rolled_back")["verdicts"]}
    assert verdicts[judge] == "fail" and verdicts["score_psi"] == "pass"


def test_bad_inputs_are_one_line_errors_before_any_patch(
    cli: Any,  # noqa: F811
    api: Any,
    cluster: Any,
    setup: dict[str, Any],
    tmp_path: Path,
) -> None:
    emulator, _ = cluster
    deploy(api, emulator, "Knative")
    AuditLog.open(setup["audit"]).close()
    missing = f"sqlite:///{tmp_path / 'nowhere.db'}"
    for args, message in (
        (
            ("--champion-version", "1", "--prometheus-url", "http://127.0.0.1:9"),
            "--prometheus-url: Prometheus",
        ),
        (("--champion-version", "1", "--prometheus-url", "prometheus:9090"), "--prometheus-url must be"),
        (("--champion-version", "1", "--audit-url", missing), "no audit log at"),
        ((), "no version of credit-pd is recorded serving prod: pass --champion-version"),
        (("--champion-version", "2"), "the canary and the champion are the same version"),
    ):
        code, out, err = cli(*RUN, *args, process=not args)  # one as CI runs it: a separate process
        lines = (out + err).strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0], (args, out, err)
    assert emulator.writes == []


def test_window_reads_both_arms_since_the_clock(tmp_path: Path) -> None:
    """The source splits the audit log by version label and honours ``since`` on the wall clock."""
    import time

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with AuditLog.open(url) as audit:
        old = "2020-01-01T00:00:00.000000Z"
        audit.append(
            AuditRecord(f"p{i}", "credit-pd", label, {"applicant_id": str(i)}, {"pd": p, "score": 1.0}, [],
                        decision(p), **({"ts": ts} if ts else {}))
            for i, (label, p, ts) in enumerate([
                ("credit-pd@2", 0.05, old), ("credit-pd@2", 0.05, None), ("credit-pd@2", 0.5, None),
                ("credit-pd@1", 0.2, None), ("credit-pd@3", 0.2, None),
            ])
        )  # fmt: skip
    since = time.time() - 60
    canary, champion = KubeWindow(url, "credit-pd@2", "credit-pd@1").window(since)
    assert canary.scores == [0.05, 0.5] and (canary.approved, canary.declined) == (1, 1)
    assert champion.scores == [0.2] and champion.requests == 1
    assert canary.unmeasured["error_rate"].startswith("not measured")
    # the same window from a monotonic clock: converted through the current offset
    mono = KubeWindow(url, "credit-pd@2", "credit-pd@1", clock=time.monotonic)
    assert mono.window(time.monotonic() - 60)[0].scores == [0.05, 0.5]
    assert mono.window(time.monotonic() + 60)[0].scores == []  # nothing in the future


def test_prometheus_reader_and_histogram_rebuild(prometheus: tuple[FakePrometheus, str]) -> None:
    state, url = prometheus
    state.arms["credit-pd@2"] = Arm(rps=10.0, err_rps=1.0)
    metrics = PrometheusMetrics(url, "creditops", "credit-pd")
    requests, errors, latencies = metrics.arm("credit-pd@2", 100.0, 110.0)
    assert (requests, errors) == (100, 10)
    assert len(latencies) == 1000 and 5.0 < float(np.median(latencies)) < 7.5  # 50 % in (5, 7.5] ms
    q = state.queries[-3:]
    sel = 'namespace="creditops",inferenceservice="credit-pd"'
    assert q[0] == (
        f"sum(increase(creditops_predictor_requests_total{{{sel}}}[10s]) and on (instance) max by (instance)"
        f' (max_over_time(creditops_predictor_model_info{{{sel},model_version="credit-pd@2"}}[10s])))'
    )
    # another InferenceService's series are not this one's
    assert PrometheusMetrics(url, "creditops", "other").arm("credit-pd@2", 100.0, 110.0) == (0, 0, [])
    # a histogram: le -> cumulative counts; +Inf observations sit on the largest finite bound
    rebuilt = latency_samples(
        [{"metric": {"le": "0.01"}, "value": [0, "2"]}, {"metric": {"le": "0.1"}, "value": [0, "4"]},
         {"metric": {"le": "+Inf"}, "value": [0, "5"]}]
    )  # fmt: skip
    assert rebuilt == pytest.approx([2.5, 7.5, 32.5, 77.5, 100.0])
    state.fail = True
    with pytest.raises(PrometheusError, match="HTTP 503: stand-in told to fail"):
        metrics.arm("credit-pd@2", 100.0, 110.0)


def test_audit_completeness_of_the_canary_from_prometheus_and_the_log(
    tmp_path: Path, prometheus: tuple[FakePrometheus, str]
) -> None:
    """Records since the canary's pods started against the answers its pods counted; resets: inconclusive."""
    import time

    from creditops.config import CanaryConfig
    from creditops.deploy.analysis import analyse

    state, url = prometheus
    audit = f"sqlite:///{tmp_path / 'audit.db'}"
    before = "2020-01-01T00:00:00.000000Z"  # an earlier rollout of the same version: not these pods'
    with AuditLog.open(audit) as log:
        log.append(
            AuditRecord(f"p{i}", "credit-pd", "credit-pd@2", {}, {"pd": 0.1, "score": 1.0}, [], "approve",
                        **({"ts": before} if i < 3 else {}))
            for i in range(13)
        )  # fmt: skip
    canary_arm = state.arms["credit-pd@2"]
    canary_arm.rows_per_s, canary_arm.spread_s = 0.0, 0.0
    source = KubeWindow(
        audit, "credit-pd@2", "credit-pd@1", metrics=PrometheusMetrics(url, "creditops", "credit-pd")
    )

    def audit_verdict() -> Any:
        canary, champion = source.window(time.time() - 30)
        return {v.name: v for v in analyse(canary, champion, CanaryConfig())}["audit"]

    canary_arm.count(10, total=0)
    v = audit_verdict()
    assert (v.status, v.detail) == ("pass", "10 audit records for 10 answers")
    with AuditLog.open(audit) as log:  # answered after the last scrape: not in the range counted
        log.append(
            AuditRecord(f"q{i}", "credit-pd", "credit-pd@2", {}, {"pd": 0.1, "score": 1.0}, [], "approve")
            for i in range(5)
        )
    assert audit_verdict().detail == "10 audit records for 10 answers"
    canary_arm.count(2, total=14)  # scraped now: 16 answers, 15 records; one answer has no record
    v = audit_verdict()
    assert v.status == "fail" and v.value == 1.0
    canary_arm.count(
        2, total=11
    )  # 13 answers, 15 records: 2 records without an answer, and no rows since (rate 0)
    assert audit_verdict().status == "fail"
    canary_arm.rows_per_s = 2.0  # 2 rows/s, scrapes 0 s apart: up to 4 records may be rows counted later
    v = audit_verdict()
    assert v.status == "pass" and "(+4 in flight)" in v.detail
    canary_arm.resets = 1
    v = audit_verdict()
    assert v.status == "inconclusive" and "counter reset" in v.detail
    canary_arm.resets = 0
    del state.arms["credit-pd@2"]  # no canary pod reports: nothing to judge by
    assert audit_verdict().status == "inconclusive"


def test_a_failing_prometheus_mid_rollout_is_inconclusive_not_a_pass(
    tmp_path: Path, prometheus: tuple[FakePrometheus, str]
) -> None:
    state, url = prometheus
    audit = f"sqlite:///{tmp_path / 'audit.db'}"
    AuditLog.open(audit).close()
    source = KubeWindow(
        audit, "credit-pd@2", "credit-pd@1", metrics=PrometheusMetrics(url, "creditops", "credit-pd")
    )
    state.fail = True
    canary, champion = source.window(0.0)
    assert set(canary.unmeasured) == {"error_rate", "latency", "audit"}
    assert "HTTP 503" in canary.unmeasured["latency"] and "HTTP 503" in canary.unmeasured["audit"]
    from creditops.config import CanaryConfig
    from creditops.deploy.analysis import analyse

    verdicts = {v.name: v for v in analyse(canary, champion, CanaryConfig())}
    assert verdicts["error_rate"].status == verdicts["latency"].status == "inconclusive"
    assert "HTTP 503" in verdicts["error_rate"].detail
    assert json.dumps(verdicts["latency"].to_dict())  # JSON-able for the history


def test_an_error_mid_rollout_rolls_the_canary_back_and_says_why(
    cli: Any,  # noqa: F811
    api: Any,
    cluster: Any,
    setup: dict[str, Any],
    prometheus: tuple[FakePrometheus, str],
) -> None:
    """The start patch goes out but KServe does not reconcile in --timeout: the canary is rolled back."""
    emulator, _ = cluster
    deploy(api, emulator, "Knative")
    emulator.reconcile_delay = 2.0  # slower than --timeout below
    with traffic(setup["audit"], {"credit-pd@1": GOOD, "credit-pd@2": GOOD}, counted=prometheus[0]):
        code, out, err = cli(
            *RUN, "--champion-version", "1", "--prometheus-url", prometheus[1], "--timeout", "0.3"
        )
    lines = (out + err).strip().splitlines()
    assert code == 2 and len(lines) == 1 and "canary at 10 % not reached in 0 s" in lines[0], (out, err)
    assert patches(emulator) == PATCHES["Knative"]["rollback"]
    assert events(cli.history) == [("2", "rolled_back", "1")]  # never started as far as the judges go
    (reason,) = [r[5] for r in history_rows(cli.history) if r[2] == "rolled_back"]
    assert reason.startswith("rollout aborted: RolloutTimeout: creditops/credit-pd: canary at 10 %"), reason


def test_a_postgres_audit_log_works_the_same(
    cli: Any,  # noqa: F811
    api: Any,
    cluster: Any,
    setup: dict[str, Any],
    prometheus: tuple[FakePrometheus, str],
    pg_url: str,
) -> None:
    """The audit log on Postgres (as in the cluster): a good canary is promoted, a shifted one is not."""
    emulator, _ = cluster
    deploy(api, emulator, "Standard")
    approve(setup["history"], "credit-pd", "2", actor="alice", reason="passed staging")
    with traffic(pg_url, {"credit-pd@1": GOOD, "credit-pd@2": GOOD}, counted=prometheus[0]):
        code, out, err = cli(
            *RUN, "--champion-version", "1", "--prometheus-url", prometheus[1], "--audit-url", pg_url
        )
    assert code == 0, out + err
    assert patches(emulator) == PATCHES["Standard"]["promote"]
    assert events(cli.history)[-1] == ("2", "promoted", "2")
    # v3 against the new champion v2, with shifted scores: rolled back on the same database
    emulator.writes.clear()
    prometheus[0].arms["credit-pd@3"] = Arm()
    run3 = ("rollout", "kube", "run", "--isvc", NAME, "--version", "3", "--storage-uri", NEW + "-3")
    with traffic(pg_url, {"credit-pd@2": GOOD, "credit-pd@3": SHIFTED}, counted=prometheus[0]):
        code, out, err = cli(*run3, "--prometheus-url", prometheus[1], "--audit-url", pg_url)
    assert code == 1, out + err
    assert [r[1:4] for r in history_rows(cli.history)][-2:] == [
        ("3", "canary_started", ""), ("3", "rolled_back", "2")  # the champion came from the history
    ]  # fmt: skip
    assert "score_psi (" in history_rows(cli.history)[-1][5]


@pytest.mark.parametrize("auto", [False, True], ids=["no-approval", "auto-promote"])
def test_promotion_needs_an_approval_unless_auto_promote(
    cli: Any,  # noqa: F811
    api: Any,
    cluster: Any,
    setup: dict[str, Any],
    prometheus: tuple[FakePrometheus, str],
    tmp_path: Path,
    auto: bool,
) -> None:
    emulator, _ = cluster
    deploy(api, emulator, "Knative")
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["deploy"]["auto_promote"] = auto
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    flags = ("--champion-version", "1", "--prometheus-url", prometheus[1], "--approval-timeout", "0.3")
    with traffic(setup["audit"], {"credit-pd@1": GOOD, "credit-pd@2": GOOD}, counted=prometheus[0]):
        code, out, err = cli(*RUN, *flags)
    if auto:
        assert code == 0, out + err
        assert patches(emulator) == PATCHES["Knative"]["promote"]
        assert events(cli.history)[-1] == ("2", "promoted", "2")
        assert details(setup, "promoted")["approved_by"] == "auto-promote"
        return
    assert code == 1, out + err
    assert patches(emulator) == [
        *PATCHES["Knative"]["promote"][:2],
        {"spec": {"predictor": {"canaryTrafficPercent": 0}}},
    ]
    assert events(cli.history) == [
        ("2", "canary_started", ""), ("2", "step", ""), ("2", "awaiting_approval", ""),
        ("2", "rolled_back", "1"),
    ]  # fmt: skip
    assert history_rows(cli.history)[-1][5] == "no approval within 0 s"


def test_audit_labels_can_be_given_when_the_predictor_labels_bundles_by_digest(
    cli: Any,  # noqa: F811
    api: Any,
    cluster: Any,
    setup: dict[str, Any],
    prometheus: tuple[FakePrometheus, str],
) -> None:
    """A predictor loading a storageUri bundle (no registry lookup) labels it ``name@<created>-<digest>``."""
    emulator, _ = cluster
    deploy(api, emulator, "Knative")
    approve(setup["history"], "credit-pd", "2", actor="alice", reason="passed staging")
    old, new = "credit-pd@20261101T000000Z-0a1b2c3d", "credit-pd@20261201T000000Z-4e5f6a7b"
    prometheus[0].arms = {old: Arm(), new: Arm()}
    labels = ("--canary-label", new, "--champion-label", old)
    with traffic(setup["audit"], {old: GOOD, new: GOOD}, counted=prometheus[0]):
        code, out, err = cli(*RUN, "--champion-version", "1", "--prometheus-url", prometheus[1], *labels)
    assert code == 0, out + err
    assert patches(emulator) == PATCHES["Knative"]["promote"]
    assert details(setup, "promoted")["labels"] == {"canary": new, "champion": old}
