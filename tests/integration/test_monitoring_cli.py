"""`creditops outcomes generate|ingest` and `creditops monitor run` over a Postgres audit log."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import psycopg
import pytest
import yaml
from governance_helpers import FEATURES, TARGET, make_bundle, make_frame

from creditops.artifact import load_bundle
from creditops.cli import main
from creditops.governance.audit import AuditLog
from creditops.monitoring.reference import write_bundle_reference
from creditops.monitoring.simulate import serve_to_audit
from predictor.testing import embed_contract

T0 = pd.Timestamp("2026-03-01", tz="UTC")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, pg_url, run_id):
    root = tmp_path_factory.mktemp("moncli")
    name = f"creditops_mon_cli_{run_id}"
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    bundle_dir, test = make_bundle(root / "bundle", n=4000)
    embed_contract(bundle_dir)  # the decision core serves bundles with a feature contract
    write_bundle_reference(bundle_dir, make_frame(4000, 0)[FEATURES], test, TARGET)
    bundle = load_bundle(bundle_dir)
    apps = make_frame(3000, 5)
    apps["applicant_id"] = np.arange(len(apps))  # integer ids, as the synthetic world has
    apps.loc[2000:, "utilisation"] += 0.4  # the third day drifts
    ts = [T0 + pd.Timedelta(days=i // 1000, seconds=i % 1000) for i in range(len(apps))]
    with AuditLog.open(url) as audit:
        serve_to_audit(bundle, apps, ts, audit)
    apps[["applicant_id", "sex", "age_band"]].to_csv(root / "applications.csv", index=False)
    config = root / "config.yaml"
    settings = {"workdir": str(root / "work"), "audit": {"url": url}, "monitoring": {"bootstrap": 50}}
    config.write_text(yaml.safe_dump(settings))
    yield {"root": root, "config": str(config), "bundle": str(bundle_dir), "url": url}
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_outcomes_generate_ingest_and_monitor_run(setup, capsys):
    root, cfg = setup["root"], ["--config", setup["config"]]
    out_csv = root / "outcomes.csv"
    assert main([*cfg, "outcomes", "generate", "--output", str(out_csv), "--horizon-days", "20",
                 "--delay-days", "5"]) == 0  # fmt: skip
    outcomes = pd.read_csv(out_csv)
    assert list(outcomes.columns[:3]) == ["applicant_id", "outcome_date", "defaulted"]
    assert len(outcomes) == 3000
    # two bad rows appended: quarantined with their reason, the rest accepted
    bad = pd.DataFrame(
        {"applicant_id": ["7", ""], "outcome_date": ["not a date", "2026-05-01"], "defaulted": [1, 0]}
    )
    pd.concat([outcomes, bad]).to_csv(out_csv, index=False)
    assert main([*cfg, "outcomes", "ingest", str(out_csv)]) == 0
    text = capsys.readouterr().out
    assert "3,000 accepted, 2 quarantined" in text
    q = pd.read_parquet(root / "work" / "outcomes" / "quarantine" / "outcomes.parquet")
    assert sorted(q["reason"]) == ["applicant_id: empty", "outcome_date: not a date"]
    report, out_json = root / "monitoring.html", root / "run.json"
    code = main([*cfg, "monitor", "run", "--reference", setup["bundle"], "--applications",
                 str(root / "applications.csv"), "--json", str(out_json), "--report", str(report),
                 "--fail-on-critical"])  # fmt: skip
    assert code == 1  # the drifted day raises a critical drift alert
    run = json.loads(out_json.read_text())
    assert [w["n"] for w in run["windows"]] == [1000, 1000, 1000]
    assert [f["name"] for f in run["windows"][2]["features"] if f["level"] == "act"] == ["utilisation"]
    assert all(f["level"] not in ("warn", "act") for f in run["windows"][0]["features"])
    assert run["windows"][0]["performance"]["matured"] == 1000
    assert {r["attribute"] for r in run["windows"][0]["fairness"]} == {"sex", "age_band"}
    assert "FeatureDriftAct" in report.read_text()


def test_monitor_run_names_a_version_without_reference(setup, capsys):
    code = main(["--config", setup["config"], "monitor", "run"])
    assert code == 2
    assert "no monitoring reference for model version" in capsys.readouterr().out


def test_outcomes_ingest_refuses_a_file_without_outcome_columns(setup, tmp_path, capsys):
    path = tmp_path / "x.csv"
    path.write_text("applicant_id,when\n1,2026-01-01\n")
    assert main(["--config", setup["config"], "outcomes", "ingest", str(path)]) == 2
    assert "outcome file lacks column(s): outcome_date, defaulted" in capsys.readouterr().out
