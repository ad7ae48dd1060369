"""Canary state machine and driver on a fake clock: promotion, rollback on threshold, deadline, approval."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from creditops.config import CanaryConfig
from creditops.deploy.analysis import ArmWindow
from creditops.deploy.controller import CanaryMachine, run_canary
from creditops.deploy.judges import Verdict

CFG = CanaryConfig(
    steps=[10, 25, 50, 100], interval_s=10, check_every_s=5, threshold=2, progress_deadline_s=60
)
OK = [Verdict("error_rate", "pass", 0, 0.01, "")]
BAD = [Verdict("error_rate", "fail", 0.5, 0.01, "50 % errors")]
WAIT = [Verdict("score_psi", "inconclusive", float("nan"), 0.1, "few")]


def test_machine_steps_through_weights_then_awaits_approval() -> None:
    m = CanaryMachine(CFG, started_at=0.0)
    assert m.weight == 10
    assert m.observe(OK, 5).kind == "hold"  # interval not over yet
    kinds = [m.observe(OK, t).kind for t in (10, 20, 30)]
    assert kinds == ["advance", "advance", "advance"] and m.weight == 100
    assert m.observe(OK, 40).kind == "await_approval" and m.phase == "awaiting_approval"
    assert m.approve().kind == "promote" and m.phase == "promoted"


def test_machine_rolls_back_after_threshold_failed_checks() -> None:
    m = CanaryMachine(CFG, started_at=0.0)
    assert m.observe(BAD, 5).kind == "hold" and m.failed_checks == 1
    action = m.observe(BAD, 10)
    assert action.kind == "rollback" and m.weight == 0 and "error_rate" in action.reason
    with pytest.raises(ValueError, match="rolled-back"):
        m.approve()


def test_machine_holds_when_inconclusive_and_rolls_back_at_the_deadline() -> None:
    m = CanaryMachine(CFG, started_at=0.0)
    assert m.observe(WAIT, 30).kind == "hold" and m.weight == 10
    action = m.observe(WAIT, 61)
    assert action.kind == "rollback" and "deadline" in action.reason


def test_a_late_evaluation_of_passing_checks_advances_instead_of_hitting_the_deadline() -> None:
    # A check that took longer than the deadline (a loaded cluster) saw a healthy step: it advances.
    m = CanaryMachine(CFG, started_at=0.0)
    assert m.observe(OK, 5).kind == "hold"
    action = m.observe(OK, 75)
    assert action.kind == "advance" and m.weight == 25
    # The next step is held to its own deadline from its start (75 s): inconclusive past it rolls back.
    assert m.observe(WAIT, 130).kind == "hold"
    assert m.observe(WAIT, 136).kind == "rollback"


def test_auto_promote_skips_the_approval() -> None:
    m = CanaryMachine(CanaryConfig(steps=[50], interval_s=10, check_every_s=5), 0.0, auto_promote=True)
    assert m.observe(OK, 10).kind == "promote"


def test_config_refuses_a_threshold_that_cannot_fit_in_one_interval() -> None:
    with pytest.raises(ValidationError, match="within one interval"):
        CanaryConfig(interval_s=10, check_every_s=5, threshold=3)
    with pytest.raises(ValidationError, match="rise strictly"):
        CanaryConfig(steps=[50, 25])
    with pytest.raises(ValidationError, match="rise strictly"):
        CanaryConfig(steps=[10, 150])


class FakeTarget:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def set_canary(self, weight: int) -> None:
        self.calls.append(("set", weight))

    def promote(self) -> None:
        self.calls.append(("promote", 100))

    def rollback(self) -> None:
        self.calls.append(("rollback", 0))

    def ready(self) -> tuple[bool, str]:
        return True, "ready"


class SyntheticSource:
    """Arms drawn from distributions; the canary's are shifted to make it bad."""

    def __init__(self, canary_error: float = 0.0, canary_slow: float = 1.0, shift: float = 0.0) -> None:
        self.rng = np.random.default_rng(0)
        self.canary_error, self.canary_slow, self.shift = canary_error, canary_slow, shift

    def _arm(self, n: int, error: float, slow: float, shift: float) -> ArmWindow:
        errors = int(self.rng.binomial(n, error))
        scores = np.clip(self.rng.beta(2, 8, n - errors) + shift, 0, 1)
        return ArmWindow(
            requests=n,
            errors=errors,
            latencies_ms=list(self.rng.lognormal(np.log(10 * slow), 0.2, n - errors)),
            scores=list(scores),
            approved=int((scores < 0.3).sum()),
            declined=int((scores >= 0.5).sum()),
            audited=n - errors,
            audit_answers=n - errors,
        )

    def window(self, since: float) -> tuple[ArmWindow, ArmWindow]:
        return (
            self._arm(400, self.canary_error, self.canary_slow, self.shift),
            self._arm(1000, 0.0, 1.0, 0.0),
        )


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


@pytest.mark.parametrize(
    ("source", "failing"),
    [
        (SyntheticSource(canary_error=0.2), "error_rate"),
        (SyntheticSource(canary_slow=10), "latency"),
        (SyntheticSource(shift=0.2), "score_psi"),
    ],
)
def test_driver_rolls_back_a_bad_canary_within_one_interval(source: SyntheticSource, failing: str) -> None:
    clock, target = FakeClock(), FakeTarget()
    result = run_canary(target, source, CFG, clock=clock, sleep=clock.sleep)
    assert result.outcome == "rolled_back" and failing in result.reason
    assert target.calls == [("set", 10), ("rollback", 0)]
    assert result.ended_at - result.started_at <= CFG.interval_s


def test_driver_promotes_a_good_canary_after_approval() -> None:
    clock, target = FakeClock(), FakeTarget()
    approvals = iter([False, True])
    result = run_canary(
        target, SyntheticSource(), CFG, clock=clock, sleep=clock.sleep, approver=lambda: next(approvals)
    )
    assert result.outcome == "promoted"
    assert target.calls == [("set", 10), ("set", 25), ("set", 50), ("set", 100), ("promote", 100)]
    kinds = [r.action.kind for r in result.reports]
    assert kinds.count("await_approval") == 1 and kinds[-1] == "promote"


def test_driver_rolls_back_when_no_approval_comes() -> None:
    clock, target = FakeClock(), FakeTarget()
    result = run_canary(
        target, SyntheticSource(), CFG, clock=clock, sleep=clock.sleep, approver=lambda: False,
        approval_timeout_s=20,
    )  # fmt: skip
    assert result.outcome == "rolled_back" and "no approval" in result.reason
    assert target.calls[-1] == ("rollback", 0)


class NoChampionAtFullWeight(SyntheticSource):
    """At 100 % the champion gets no traffic in the step's window; only the whole rollout has a baseline."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[float] = []

    def window(self, since: float) -> tuple[ArmWindow, ArmWindow]:
        self.calls.append(since)
        canary, champion = super().window(since)
        return canary, (champion if since == 0.0 else ArmWindow())


def test_last_step_is_judged_against_the_champion_traffic_of_the_whole_rollout() -> None:
    clock, source = FakeClock(), NoChampionAtFullWeight()
    cfg = CanaryConfig(steps=[50, 100], interval_s=10, check_every_s=5, threshold=2, progress_deadline_s=60)
    result = run_canary(FakeTarget(), source, cfg, clock=clock, sleep=clock.sleep, auto_promote=True)
    # without the fallback every check at 100 % is inconclusive, and the deadline rolls the canary back
    assert result.outcome == "promoted", result.reason
    assert [r.weight for r in result.reports if r.action.kind == "advance"] == [100]
    assert source.calls.count(0.0) > 2  # the step windows of 50 %, then the baseline at 100 %


class CumulativeTraffic:
    """A stream of requests split by the target's weight, each arm's decisions drawn at its own rates.

    ``window(since)`` returns the rows that arrived since ``since`` (clock seconds), so the windows of one
    step grow look by look as a real router's do: the repeated-looks situation the judges' alpha is for.
    """

    def __init__(self, target: FakeTarget, clock: FakeClock, rng: np.random.Generator, rates: dict) -> None:
        self.target, self.clock, self.rng, self.rates = target, clock, rng, rates
        self.seconds: list[tuple[float, int, ArmWindow, ArmWindow]] = []  # (second, weight, canary, champion)

    def _tick(self) -> None:
        while len(self.seconds) < int(self.clock.t):
            weight = self.target.calls[-1][1]
            n = int(self.rng.poisson(300))
            n_canary = int(self.rng.binomial(n, weight / 100))
            self.seconds.append(
                (
                    float(len(self.seconds)),
                    weight,
                    self._arm(n_canary, "canary"),
                    self._arm(n - n_canary, "champion"),
                )
            )

    def _arm(self, n: int, arm: str) -> ArmWindow:
        approve, decline = self.rates[arm]
        kind = self.rng.choice(3, size=n, p=[approve, decline, 1 - approve - decline])
        scores = np.where(kind == 0, 0.05, np.where(kind == 1, 0.6, 0.25)) + self.rng.uniform(-0.04, 0.04, n)
        return ArmWindow(
            requests=n,
            latencies_ms=list(self.rng.lognormal(np.log(10), 0.2, n)),
            scores=list(scores),
            approved=int((kind == 0).sum()),
            declined=int((kind == 1).sum()),
        )

    def window(self, since: float) -> tuple[ArmWindow, ArmWindow]:
        self._tick()
        canary, champion = ArmWindow(), ArmWindow()
        for second, _, c, h in self.seconds:
            if second >= since:
                for total, part in ((canary, c), (champion, h)):
                    total.requests += part.requests
                    total.latencies_ms += part.latencies_ms
                    total.scores += part.scores
                    total.approved += part.approved
                    total.declined += part.declined
        return canary, champion


def _rollback_rate(cfg: CanaryConfig, rates: dict, runs: int) -> float:
    rng, rolled = np.random.default_rng(7), 0
    for _ in range(runs):
        clock, target = FakeClock(), FakeTarget()
        source = CumulativeTraffic(target, clock, rng, rates)
        result = run_canary(target, source, cfg, clock=clock, sleep=clock.sleep, auto_promote=True)
        rolled += result.outcome == "rolled_back"
    return rolled / runs


LOOKS = CanaryConfig(steps=[20, 50, 100], interval_s=4, check_every_s=1, threshold=2, min_requests=10)


def test_repeated_looks_keep_the_false_rollback_rate_near_alpha() -> None:
    # An equal challenger judged at alpha itself on each of the 12 cumulative looks was rolled back in 4.2 %
    # of these rollouts (9.5 % with a decline rate 1.4 points below the champion's); at look_alpha, 0.75 %.
    assert LOOKS.planned_looks == 12 and LOOKS.look_alpha == pytest.approx(0.01 / 12)
    rates = {"canary": (0.14, 0.239), "champion": (0.14, 0.239)}
    assert _rollback_rate(LOOKS, rates, runs=400) <= 2 * LOOKS.alpha


def test_repeated_looks_still_roll_back_a_material_decline_shift() -> None:
    rates = {"canary": (0.14, 0.339), "champion": (0.14, 0.239)}  # 10 points more declines
    assert _rollback_rate(LOOKS, rates, runs=40) == 1.0
