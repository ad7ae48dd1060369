"""Feature health on a filled SQLite store, and each check failing on data built to fail it."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import generate_latest

from creditops.cli import main
from creditops.config import FeastConfig
from creditops.data.synthetic import generate_world
from creditops.features.build import build_feature_tables, entity_frame
from creditops.features.health import (
    FeatureHealth,
    freshness,
    health_gauges,
    health_markdown,
    null_rates,
    out_of_range_rates,
    skew,
)
from creditops.features.registry import model_feature_names
from creditops.governance.audit import AuditLog, AuditRecord
from feast_repo import store as fs
from feast_repo.health import check_health


def test_rates_freshness_and_skew_on_built_frames() -> None:
    frame = pd.DataFrame({"a": [1.0, np.nan, 5.0, -1.0], "b": [0.0, 1.0, 2.0, 3.0]})
    assert null_rates(frame, ["a", "b"]) == {"a": 0.25, "b": 0.0}
    assert out_of_range_rates(frame, {"a": (0, 4), "b": (None, None)}) == {
        "a": pytest.approx(2 / 3),
        "b": 0.0,
    }
    now = datetime(2026, 12, 2, tzinfo=UTC)
    assert freshness({"v": now - timedelta(hours=2), "w": None}, now) == {"v": 7200.0, "w": float("inf")}
    served = pd.DataFrame({"a": [1.0, 2.0, np.nan], "b": [0.1, 0.2, 0.3]})
    offline = pd.DataFrame({"a": [1.0, 2.5, np.nan], "b": [np.float32(0.1), 0.2, 0.3]})
    counts, examples = skew(served, offline, ["a", "b"])
    assert counts == {"a": 1, "b": 0}  # float32 rounding is not skew, a different value is
    assert examples == [{"row": 1, "feature": "a", "served": 2.0, "offline": 2.5}]


def test_health_of_a_filled_store_with_audited_decisions(tmp_path: Path, run_id: str) -> None:
    world = generate_world(120, seed=9)
    store = fs.open_store(
        config=FeastConfig(project=f"creditops_test_{run_id}_health"), data_dir=tmp_path / "d"
    )
    try:
        fs.write_offline(build_feature_tables(world), store)
        fs.apply(store)
        fs.materialize(store, world.as_of.to_pydatetime())
        # decisions at application time: the served vector is what the store held then
        entities = entity_frame(world.applications).head(6)
        served = fs.training_frame(store, entities)
        ids = entities["applicant_id"].tolist()
        records = []
        for k, row in enumerate(served.to_dict(orient="records")):
            inputs = {"applicant_id": int(row["applicant_id"]), **{f: row[f] for f in model_feature_names()}}
            if k == 2:
                inputs["credit_score"] += 7  # a served vector that the offline retrieval does not reproduce
            ts = row["event_timestamp"].isoformat().replace("+00:00", "Z")
            records.append(AuditRecord(f"p{k}", "credit-pd", "1", inputs, {"pd": 0.1}, [], "approve", ts=ts))
        url = f"sqlite:///{tmp_path / 'audit.db'}"
        with AuditLog.open(url) as log:
            log.append(records)

        now = world.as_of.to_pydatetime() + timedelta(hours=3)
        health = check_health(store, sample=80, audit_url=url, now=now)
        assert set(health.freshness_seconds) == {"identity_fv", "bureau_fv", "behavioural_fv", "derived_fv"}
        assert health.freshness_seconds["derived_fv"] == pytest.approx(3 * 3600)  # as-of rows are the newest
        assert all(0 < s < float("inf") for s in health.freshness_seconds.values())
        assert max(health.null_rate.values()) == 0.0 and max(health.out_of_range_rate.values()) == 0.0
        assert max(health.offline_online_psi.values()) < 1e-3  # online = the offline table's latest rows
        assert health.skew_checked == 6
        assert {f: n for f, n in health.skew_mismatches.items() if n} == {"credit_score": 1}
        assert health.skew_examples[0]["applicant_id"] == ids[2]

        text = generate_latest(health_gauges(health)).decode()
        assert 'creditops_feature_skew_mismatches{feature="credit_score"} 1.0' in text
        assert 'creditops_feature_freshness_seconds{view="derived_fv"} 10800.0' in text
        assert "| credit_score ⚠ |" in health_markdown(health)

        config = tmp_path / "creditops.yaml"
        config.write_text(
            f"workdir: {tmp_path / 'work'}\naudit:\n  url: '{url}'\n"
            f"feast:\n  project: creditops_test_{run_id}_health\n  data_dir: {tmp_path / 'd'}\n"
        )
        assert main(["--config", str(config), "features", "health", "--sample", "40"]) == 0
        report = (tmp_path / "work" / "reports" / "feature-health.md").read_text()
        assert "| credit_score ⚠ | 0.000 | 0.000 |" in report and "1/6 |" in report
        prom = (tmp_path / "work" / "reports" / "feature-health.prom").read_text()
        assert 'creditops_feature_skew_mismatches{feature="credit_score"} 1.0' in prom
    finally:
        fs.teardown(store)


def test_report_flags_only_unhealthy_features() -> None:
    health = FeatureHealth({"v": 10.0}, {"a": 0.0, "b": 0.0}, {"a": 0.5, "b": 0.0}, {"a": 0.0, "b": 0.0})
    report = health_markdown(health)
    assert "| a ⚠ |" in report and "| b |" in report
