"""The scheduler on a fake clock over a simulated month: right instants, one run at a time, no catch-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from creditops.config import ScheduleConfig
from creditops.errors import ConfigError
from creditops.schedule import Cron, Job, Scheduler


class FakeClock:
    """Simulated time: ``sleep`` and the jobs' work advance it; nothing waits."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 2 * * *", "2026-12-02T01:59", "2026-12-02T02:00"),
        ("0 2 * * *", "2026-12-02T02:00", "2026-12-03T02:00"),  # strictly after
        ("0 3 1 * *", "2026-12-02T00:00", "2027-01-01T03:00"),
        ("*/15 9-10 * * *", "2026-12-02T10:46", "2026-12-03T09:00"),
        ("0 0 * * 0", "2026-12-02T00:00", "2026-12-06T00:00"),  # Sunday
        ("0 0 * * 7", "2026-12-02T00:00", "2026-12-06T00:00"),  # 7 is Sunday too
        ("0 0 13 * 5", "2026-12-02T00:00", "2026-12-04T00:00"),  # dom OR dow: Friday the 4th first
        ("0 0 29 2 *", "2026-12-02T00:00", "2028-02-29T00:00"),
        ("30 4 1,15 * *", "2026-12-15T04:30", "2027-01-01T04:30"),
    ],
)
def test_next_after(expression: str, after: str, expected: str) -> None:
    assert Cron.parse(expression).next_after(_t(after)) == _t(expected)


@pytest.mark.parametrize(
    ("expression", "field"),
    [("0 2 * *", "5 fields"), ("61 2 * * *", "minute"), ("0 x * * *", "hour"), ("0 0 0 * *", "day-of-month")],
)
def test_bad_expressions_are_refused_naming_the_field(expression: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        Cron.parse(expression)


def test_a_simulated_month_daily_at_two_and_monthly_retraining() -> None:
    cfg = ScheduleConfig()
    clock = FakeClock(_t("2026-12-31T12:00"))
    durations = {"daily": timedelta(minutes=20), "retrain": timedelta(minutes=50)}
    active: list[str] = []
    overlaps: list[str] = []

    def work(name: str):
        def run() -> None:
            if active:
                overlaps.append(f"{name} while {active}")
            active.append(name)
            clock.now += durations[name]
            active.remove(name)

        return run

    sched = Scheduler(
        [
            Job("daily", Cron.parse(cfg.daily_cron), work("daily")),
            Job("retrain", Cron.parse(cfg.retrain_cron), work("retrain")),
        ],
        clock=clock,
        max_concurrency=cfg.max_concurrency,
    )
    runs = sched.run_until(lambda: clock.now >= _t("2027-02-01T12:00"), clock.sleep)

    daily = [r.started for r in runs if r.job == "daily"]
    retrain = [r.started for r in runs if r.job == "retrain"]
    assert daily == [_t("2027-01-01T02:00") + timedelta(days=d) for d in range(32)]
    assert retrain == [_t("2027-01-01T03:00"), _t("2027-02-01T03:00")]
    assert all(r.started == r.due and r.error is None for r in runs)
    assert overlaps == []


def test_never_two_runs_at_once_and_missed_instants_are_skipped() -> None:
    clock = FakeClock(_t("2027-01-01T00:00"))
    sched = Scheduler(
        [
            Job("daily", Cron.parse("0 2 * * *"), lambda: None),
            Job("retrain", Cron.parse("0 3 1 * *"), lambda: None),
        ],
        clock=clock,
    )
    clock.now = _t("2027-01-01T02:00")
    assert [f.job for f in sched.due()] == ["daily"]
    clock.now = _t("2027-01-01T03:00")  # retraining is due but the daily run still holds the one slot
    assert sched.due() == []
    clock.now = _t("2027-01-04T05:00")  # the daily run overran by three days (three instants missed)
    assert sched.due() == []
    sched.finish("daily")
    started = sched.due()
    assert [(f.job, f.due) for f in started] == [("retrain", _t("2027-01-01T03:00"))]
    assert sched.due() == []  # daily waits for retraining to end
    sched.finish("retrain")
    (again,) = sched.due()
    # once, for the instant it was first owed, not once per missed day; then back on the schedule
    assert (again.job, again.due, again.started) == ("daily", _t("2027-01-02T02:00"), _t("2027-01-04T05:00"))
    sched.finish("daily")
    assert sched.jobs[0].next_due == _t("2027-01-05T02:00")
    assert [f.job for f in sched.history] == ["daily", "retrain", "daily"]


def test_a_scheduler_started_late_owes_nothing_and_a_failed_run_does_not_stop_it() -> None:
    clock = FakeClock(_t("2027-01-01T02:30"))  # 30 minutes after today's instant: not run

    def boom() -> None:
        clock.now += timedelta(minutes=1)
        raise RuntimeError("ingest failed")

    sched = Scheduler([Job("daily", Cron.parse("0 2 * * *"), boom)], clock=clock)
    runs = sched.run_until(lambda: clock.now >= _t("2027-01-03T03:00"), clock.sleep)
    assert [r.started for r in runs] == [_t("2027-01-02T02:00"), _t("2027-01-03T02:00")]
    assert all(r.error == "RuntimeError: ingest failed" for r in runs)


def _kfp_cron(manifest_text: str) -> dict[str, str]:
    """Recurring-run name -> its 6-field KFP cron, from manifests/base/kfp/recurring-runs.yaml."""
    import yaml

    doc = yaml.safe_load(manifest_text)
    runs = doc.get("recurringRuns") or doc.get("recurring_runs") or doc.get("runs") or []
    return {r["name"]: r["cron"] for r in runs}


def test_manifests_use_the_same_cron_expressions() -> None:
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "manifests" / "base" / "kfp" / "recurring-runs.yaml"
    if not path.exists():
        pytest.skip("manifests/base/kfp/recurring-runs.yaml is not in this checkout (deploy-static branch)")
    crons = set(_kfp_cron(path.read_text()).values())
    cfg = ScheduleConfig()
    assert {"0 " + cfg.daily_cron, "0 " + cfg.retrain_cron} <= crons, crons
