"""The daily pipeline end to end on the KFP local runner (small world); the retraining hook is called."""

import time
from pathlib import Path

from creditops.config import load_config
from feast_repo import store as fs
from pipelines.daily import run_daily


def test_daily_pipeline_local_runner(tmp_path: Path, run_id: str) -> None:
    settings = load_config(
        None,
        {
            "workdir": str(tmp_path / "work"),
            "data": {"n_applicants": 300},
            "feast": {"project": f"creditops_test_{run_id}_dailyrun"},
        },
    ).resolved()
    calls: list[dict] = []
    started = time.perf_counter()
    # a negative PSI limit: every feature exceeds it, so the policy must ask for retraining
    decision = run_daily(
        settings, on_retrain=calls.append, emit=lambda _: None, max_psi=-1.0, min_current_rows=1
    )
    took = time.perf_counter() - started
    print(f"daily pipeline local run: {took:.1f} s")
    assert decision["retrain"] and calls == [decision]
    assert Path(decision["log"]).exists()
    store = fs.open_store(config=settings.feast)
    try:
        assert "credit_scoring_v1" in {s.name for s in store.list_feature_services()}
    finally:
        fs.teardown(store)
