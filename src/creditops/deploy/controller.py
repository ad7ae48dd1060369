"""Canary rollout controller: a pure state machine (:class:`CanaryMachine`) and its driver.

Semantics (Flagger's): the canary gets ``steps[0]`` % of traffic; every ``check_every_s`` the judges run on
the current step's traffic; a failed check increments ``failed_checks`` and ``threshold`` of them roll back;
after ``interval_s`` on a step with the last check passing (not inconclusive) the weight moves to the next
step; after the last step passes, the rollout waits for a recorded approval (unless ``auto_promote``) and
then promotes. A step that cannot advance for ``progress_deadline_s`` (its checks stay inconclusive) rolls
back; one whose checks pass advances when they are evaluated, however late (a slow check is no reason).
The machine never touches a target: the driver applies its actions through the :class:`Target` protocol,
so the local router and the KServe InferenceService are driven by the same code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from creditops.config import CanaryConfig
from creditops.deploy.analysis import ArmWindow, analyse
from creditops.deploy.judges import Verdict

Phase = Literal["progressing", "awaiting_approval", "promoted", "rolled_back"]
ActionKind = Literal["hold", "advance", "await_approval", "promote", "rollback"]


@dataclass(frozen=True)
class Action:
    """What the driver must do after a check: ``weight`` is the canary's new traffic share."""

    kind: ActionKind
    weight: int
    reason: str = ""


@dataclass
class CanaryMachine:
    """Canary state: current step, failed checks, timers. ``observe`` is the only transition.

    Args:
        cfg: Steps, intervals, threshold, deadline.
        started_at: Clock value when the canary got its first traffic.
        auto_promote: Promote without an approval after the last step passes.
    """

    cfg: CanaryConfig
    started_at: float
    auto_promote: bool = False
    step: int = 0
    failed_checks: int = 0
    phase: Phase = "progressing"
    step_started_at: float = field(init=False)

    def __post_init__(self) -> None:
        self.step_started_at = self.started_at

    @property
    def weight(self) -> int:
        """The canary's traffic share on the current step (0 once rolled back, 100 once promoted)."""
        if self.phase == "rolled_back":
            return 0
        if self.phase == "promoted":
            return 100
        return self.cfg.steps[self.step]

    def observe(self, verdicts: list[Verdict], now: float) -> Action:
        """Advance the state on one check's verdicts at clock ``now``; return what to apply."""
        if self.phase in ("promoted", "rolled_back"):
            return Action("hold", self.weight, f"rollout already {self.phase}")
        failed = [v for v in verdicts if v.failed]
        if failed:
            self.failed_checks += 1
            names = ", ".join(f"{v.name} ({v.detail})" for v in failed)
            if self.failed_checks >= self.cfg.threshold:
                return self._rollback(f"{self.failed_checks} failed check(s): {names}")
            return Action(
                "hold", self.weight, f"failed check {self.failed_checks}/{self.cfg.threshold}: {names}"
            )
        if self.phase == "awaiting_approval":
            return Action("await_approval", self.weight, "last step passed; waiting for an approval")
        conclusive = all(v.status == "pass" for v in verdicts)
        if now - self.step_started_at < self.cfg.interval_s or not conclusive:
            # The deadline is for a step that cannot advance (not ready, too little traffic): a step whose
            # checks pass when they are next evaluated advances, however late that evaluation came.
            if now - self.step_started_at >= self.cfg.progress_deadline_s:
                return self._rollback(
                    f"no progress for {self.cfg.progress_deadline_s:.0f} s (progress deadline)"
                )
            why = "checks pass" if conclusive else "too little traffic to judge yet"
            return Action("hold", self.weight, why)
        if self.step + 1 < len(self.cfg.steps):
            self.step += 1
            self.step_started_at = now
            return Action("advance", self.weight, f"step passed; canary to {self.weight} %")
        if self.auto_promote:
            return self.approve()
        self.phase = "awaiting_approval"
        return Action("await_approval", self.weight, "last step passed; waiting for an approval")

    def approve(self) -> Action:
        """Promote (after the last step passed, or on an explicit approval while awaiting it)."""
        if self.phase == "rolled_back":
            raise ValueError("cannot promote a rolled-back canary")
        self.phase = "promoted"
        return Action("promote", 100, "promoted to champion")

    def abort(self, reason: str) -> Action:
        """Roll back on request (an operator, a failed staging test)."""
        return self._rollback(reason)

    def _rollback(self, reason: str) -> Action:
        self.phase = "rolled_back"
        return Action("rollback", 0, reason)


class Target(Protocol):
    """Where traffic weights are applied: the local router or a KServe InferenceService."""

    def set_canary(self, weight: int) -> None:
        """Send ``weight`` % of new requests to the canary (the first call starts the canary)."""

    def promote(self) -> None:
        """Make the canary the champion and send it all traffic."""

    def rollback(self) -> None:
        """Send all new requests to the champion (requests in flight on the canary finish)."""

    def ready(self) -> tuple[bool, str]:
        """Whether the canary is ready to get traffic, and why not."""


class WindowSource(Protocol):
    """Per-arm observations since a clock value (the router's records, or a metrics backend)."""

    def window(self, since: float) -> tuple[ArmWindow, ArmWindow]:
        """``(canary, champion)`` observations of requests that started at or after ``since``."""


@dataclass(frozen=True)
class StepReport:
    """One check as the driver saw it (printed by the demo, collected by the bench)."""

    at: float
    weight: int
    action: Action
    verdicts: list[Verdict]


@dataclass
class RolloutResult:
    """How a rollout ended."""

    outcome: Phase
    reason: str
    reports: list[StepReport]
    started_at: float
    ended_at: float
    rolled_back_at: float | None = None


Approver = Callable[[], bool]


def run_canary(
    target: Target,
    source: WindowSource,
    cfg: CanaryConfig,
    *,
    auto_promote: bool = False,
    approver: Approver | None = None,
    on_report: Callable[[StepReport], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    approval_timeout_s: float = 3600.0,
) -> RolloutResult:
    """Drive a canary from its first step to promotion or rollback.

    Args:
        target: Applies weights.
        source: Gives the current step's observations.
        cfg: Canary settings.
        auto_promote: Promote without asking ``approver``.
        approver: Polled while awaiting approval; True once an approval is recorded.
        on_report: Called with every check's report.
        clock: Injectable time source (tests run the machine on a fake clock).
        sleep: Injectable sleep, paired with ``clock``.
        approval_timeout_s: Give up waiting for an approval after this long (the canary is rolled back).
    """
    start = clock()
    machine = CanaryMachine(cfg, start, auto_promote=auto_promote)
    target.set_canary(machine.weight)
    reports: list[StepReport] = []
    awaiting_since: float | None = None
    while True:
        sleep(cfg.check_every_s)
        now = clock()
        canary, champion = source.window(machine.step_started_at)
        if champion.requests < cfg.min_requests:
            # at 100 % (or a step too short for the champion to see traffic) there is no side-by-side
            # baseline: judge the canary against the champion's traffic since the rollout began
            _, champion = source.window(start)
        verdicts = analyse(canary, champion, cfg, ready=target.ready())
        action = machine.observe(verdicts, now)
        if action.kind == "await_approval":
            awaiting_since = awaiting_since if awaiting_since is not None else now
            if approver is not None and approver():
                action = machine.approve()
            elif now - awaiting_since > approval_timeout_s:
                action = machine.abort(f"no approval within {approval_timeout_s:.0f} s")
        _apply(target, action)
        report = StepReport(now, machine.weight, action, verdicts)
        reports.append(report)
        if on_report is not None:
            on_report(report)
        if machine.phase in ("promoted", "rolled_back"):
            end = clock()
            rolled = end if machine.phase == "rolled_back" else None
            return RolloutResult(machine.phase, action.reason, reports, start, end, rolled)


def _apply(target: Target, action: Action) -> None:
    if action.kind == "advance":
        target.set_canary(action.weight)
    elif action.kind == "promote":
        target.promote()
    elif action.kind == "rollback":
        target.rollback()
