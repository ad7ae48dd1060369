"""Run pipelines on cron expressions on one machine: what KFP recurring runs do on a cluster.

:class:`Cron` parses the 5-field subset the schedules use (``*``, numbers, ``a-b`` ranges, ``*/n`` and
``a-b/n`` steps, ``,`` lists; day-of-month and day-of-week OR-ed when both are restricted, as in cron).
:class:`Scheduler` is pure: time comes from an injectable clock, so a test drives a simulated month in
milliseconds. Its semantics are KFP's ``max_concurrency`` and ``no_catchup``:

- at most ``max_concurrency`` runs at once over all jobs; a job that falls due while the slot is taken
  stays due and starts when the slot frees;
- no catch-up: however many instants of a job passed while it waited (or while the process slept), it
  starts once, and its next instant is the first one after that start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from creditops.errors import ConfigError

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)


def _parse_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                lo, hi = low, high
            elif "-" in body:
                lo, hi = (int(x) for x in body.split("-", 1))
            else:
                lo = hi = int(body)
                if step_text:
                    hi = high
        except ValueError:
            raise ConfigError(f"cron {name} field {text!r}: not a number, range or step") from None
        if step < 1 or not low <= lo <= hi <= high:
            raise ConfigError(f"cron {name} field {text!r}: outside {low}-{high} or bad step")
        values.update(range(lo, hi + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed 5-field cron expression (UTC)."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (7 is folded into 0)
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        """Parse ``expression``.

        Raises:
            ConfigError: not five fields, or a field out of range (the message names the field).
        """
        parts = expression.split()
        if len(parts) != 5:
            raise ConfigError(f"cron {expression!r}: expected 5 fields (minute hour dom month dow)")
        sets = [_parse_field(p, n, lo, hi) for p, (n, lo, hi) in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(expression, *sets[:4], weekdays, parts[2] == "*", parts[4] == "*")

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        dom, dow = day.day in self.days, (day.weekday() + 1) % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def next_after(self, when: datetime) -> datetime:
        """The first matching minute strictly after ``when`` (a naive ``when`` is taken as UTC)."""
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        start = when.replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        for _ in range(366 * 8):  # covers Feb 29 on a given weekday
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = day.replace(hour=hour, minute=minute)
                        if candidate >= start:
                            return candidate
            day += timedelta(days=1)
        raise ConfigError(f"cron {self.expression!r} never fires")


@dataclass
class Job:
    """A named pipeline run on a cron expression; ``run`` blocks until the pipeline ends."""

    name: str
    cron: Cron
    run: Callable[[], object]
    next_due: datetime | None = None


@dataclass
class Fired:
    """One run the scheduler started: which job, for which due instant, when it really started."""

    job: str
    due: datetime
    started: datetime
    finished: datetime | None = None
    error: str | None = None


@dataclass
class Scheduler:
    """Cron scheduling with KFP's ``max_concurrency`` and no-catch-up semantics (see the module doc)."""

    jobs: list[Job]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    max_concurrency: int = 1
    running: dict[str, Fired] = field(default_factory=dict)
    history: list[Fired] = field(default_factory=list)

    def __post_init__(self) -> None:
        now = self.clock()
        for job in self.jobs:
            job.next_due = job.cron.next_after(now)  # a fresh scheduler owes nothing from the past

    def due(self) -> list[Fired]:
        """Start (mark running) the jobs due now while a slot is free; return them in due order."""
        now = self.clock()
        started = []
        for job in sorted(self.jobs, key=lambda j: j.next_due):
            if job.next_due > now or job.name in self.running or len(self.running) >= self.max_concurrency:
                continue
            fired = Fired(job.name, job.next_due, now)
            job.next_due = job.cron.next_after(now)  # every instant missed until now is skipped
            self.running[job.name] = fired
            self.history.append(fired)
            started.append(fired)
        return started

    def finish(self, name: str, error: str | None = None) -> None:
        """Mark a job's run as ended (freeing its slot)."""
        fired = self.running.pop(name)
        fired.finished, fired.error = self.clock(), error

    def next_wakeup(self) -> datetime:
        """The earliest due instant over all jobs."""
        return min(j.next_due for j in self.jobs)

    def run_until(self, stop: Callable[[], bool], sleep: Callable[[float], None]) -> list[Fired]:
        """Run due jobs one after another (in this thread) until ``stop()``; return the runs started.

        A job raising is recorded (``Fired.error``) and does not stop the schedule.
        """
        jobs = {j.name: j for j in self.jobs}
        start = len(self.history)
        while not stop():
            for fired in self.due():
                try:
                    jobs[fired.job].run()
                except Exception as exc:  # noqa: BLE001 - one failed run must not end the schedule
                    self.finish(fired.job, error=f"{type(exc).__name__}: {exc}")
                else:
                    self.finish(fired.job)
            wait = (self.next_wakeup() - self.clock()).total_seconds()
            if wait > 0 and not stop():
                sleep(min(wait, 60.0))
        return self.history[start:]
