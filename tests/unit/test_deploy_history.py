"""Deployment history (append-only, "who served prod on date X"), approvals, A/B report, arm assignment."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from creditops.deploy.analysis import ArmWindow
from creditops.deploy.experiments import compare_arms
from creditops.deploy.history import DeploymentHistory
from creditops.deploy.release import ApprovalRequired, approve, promote_to_champion
from creditops.deploy.router import ab_arm
from creditops.errors import CreditOpsError


def fill(history: DeploymentHistory) -> None:
    history.record("staging", "m", 1, "staged", ts="2026-11-01T09:00:00Z")
    history.record(
        "prod", "m", 1, "approved", actor="alice", reason="canary clean", ts="2026-11-01T10:00:00Z"
    )
    history.record("prod", "m", 1, "promoted", serving=1, actor="alice", ts="2026-11-01T10:05:00Z")
    history.record("prod", "m", 2, "canary_started", ts="2026-11-10T08:00:00Z")
    history.record("prod", "m", 2, "rolled_back", serving=1, reason="psi", ts="2026-11-10T08:03:00Z")
    history.record("prod", "m", 3, "approved", actor="bob", reason="better AUC", ts="2026-11-20T11:00:00Z")
    history.record("prod", "m", 3, "promoted", serving=3, actor="bob", ts="2026-11-20T11:30:00Z")


def test_served_at_answers_which_version_and_who_approved(tmp_path: Path) -> None:
    history = DeploymentHistory(f"sqlite:///{tmp_path / 'h.db'}")
    fill(history)
    assert history.served_at("prod", "m", "2026-10-31") is None
    on_first = history.served_at("prod", "m", "2026-11-01")
    assert on_first is not None and on_first.version == "1" and on_first.approval.actor == "alice"
    # the rolled-back canary of v2 never changed what served prod
    mid = history.served_at("prod", "m", "2026-11-15")
    assert mid.version == "1" and mid.since == "2026-11-01T10:05:00.000000Z"
    late = history.served_at("prod", "m", "2026-11-20T12:00:00Z")
    assert late.version == "3" and late.approval.actor == "bob" and late.approval.reason == "better AUC"
    # before v3's promotion that day, v1 still served
    assert history.served_at("prod", "m", "2026-11-20T11:10:00Z").version == "1"


def test_history_is_append_only(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    history = DeploymentHistory(f"sqlite:///{path}")
    fill(history)
    with sqlite3.connect(path) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE deployment_history SET actor = 'mallory'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM deployment_history")
    assert len(history.events()) == 7
    with pytest.raises(CreditOpsError, match="environment"):
        history.record("production", "m", 1, "staged")


def test_history_on_postgres(pg_url: str) -> None:
    import psycopg

    history = DeploymentHistory(pg_url)
    fill(history)
    assert history.served_at("prod", "m", "2026-11-21").version == "3"
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute("DELETE FROM deployment_history")
    history.close()


def test_promotion_needs_a_recorded_approval(tmp_path: Path) -> None:
    history = DeploymentHistory(f"sqlite:///{tmp_path / 'h.db'}")
    with pytest.raises(ApprovalRequired, match="no recorded approval"):
        promote_to_champion(history, f"sqlite:///{tmp_path / 'mlflow.db'}", "m", 4)
    with pytest.raises(CreditOpsError, match="actor and reason"):
        approve(history, "m", 4, actor=" ", reason="x")
    assert history.events() == []


def test_ab_arm_is_deterministic_and_near_the_split() -> None:
    arms = [ab_arm(str(i), 30) for i in range(4000)]
    assert arms == [ab_arm(str(i), 30) for i in range(4000)]
    assert 0.27 < arms.count("b") / len(arms) < 0.33


def _arm(rng: np.random.Generator, n: int, shift: float) -> ArmWindow:
    scores = np.clip(rng.beta(2, 8, n) + shift, 0, 1)
    return ArmWindow(n, 0, [10.0] * n, list(scores), int((scores < 0.2).sum()), int((scores > 0.5).sum()))


def test_ab_report_finds_a_real_difference_and_not_a_fake_one() -> None:
    rng = np.random.default_rng(0)
    same = compare_arms(_arm(rng, 3000, 0.0), _arm(rng, 3000, 0.0))
    assert not same["significant_difference"] and "no significant" in same["verdict"]
    differ = compare_arms(_arm(rng, 3000, 0.05), _arm(rng, 3000, 0.0))
    assert differ["significant_difference"]
    assert differ["tests"]["approval_rate"]["significant"] and differ["tests"]["score_ks"]["significant"]
    assert differ["challenger"]["approval_rate"] < differ["champion"]["approval_rate"]
