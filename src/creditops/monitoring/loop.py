"""The closed loop: monitoring -> trigger policy -> retraining pipeline -> canary -> approval -> champion.

:func:`assess` turns one monitoring run (plus any alerts Alertmanager sent to the receiver) into the inputs
of the trigger policy (:func:`creditops.monitoring.trigger.decide_retraining`): the champion's alerts per
window, its AUC on matured outcomes, when it was last retrained and how many outcomes matured since.
:func:`close_loop` records the decision in the deployment history and, when it says retrain, runs the
retraining pipeline and hands a registered challenger to the local canary. Promotion waits for an approval
recorded with ``creditops deploy approve`` unless ``monitoring.retraining.auto_promote`` (or
``deploy.auto_promote``).

Every step is a row of the deployment history (environment ``training`` for the decision and the
retraining, ``prod`` for the canary), so "why did v7 replace v6" is answered by one table.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from creditops.config import Settings
from creditops.deploy.history import DeploymentHistory
from creditops.monitoring.alerts import Alert, evaluate_alerts
from creditops.monitoring.run import MonitoringRun, finite
from creditops.monitoring.trigger import TriggerDecision, decide_retraining

log = logging.getLogger("creditops.monitoring.loop")

ENVIRONMENT = "training"
RETRAIN_STARTED = "retrain_started"


@dataclass(frozen=True)
class LoopInputs:
    """What the trigger policy is given, kept with the decision so it can be replayed."""

    model_version: str | None
    windows: list[str]
    alerts: list[list[Alert]]
    matured_auc: float | None
    matured_outcomes: int
    last_retrained_at: datetime | None
    new_labelled_outcomes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (alerts by name and labels)."""
        return {
            "model_version": self.model_version,
            "windows": self.windows,
            "alerts": [[dict(a.labels) for a in w] for w in self.alerts],
            "matured_auc": self.matured_auc,
            "matured_outcomes": self.matured_outcomes,
            "last_retrained_at": self.last_retrained_at.isoformat() if self.last_retrained_at else None,
            "new_labelled_outcomes": self.new_labelled_outcomes,
        }


@dataclass
class LoopResult:
    """One turn of the loop: the decision, and what was run because of it."""

    decision: TriggerDecision
    inputs: LoopInputs
    retraining: dict[str, Any] | None = None
    rollout: Any = None
    events: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------------
# received alerts (Alertmanager -> creditops monitor receive)


class ReceivedAlerts:
    """Alerts the receiver got, appended to a JSON-lines file so a later check (another process) sees them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, alerts: Iterable[Alert]) -> None:
        """Append alerts with the time they were received."""
        now = datetime.now(UTC).isoformat()
        lines = [json.dumps({"received_at": now, **a.to_alertmanager()}) for a in alerts]
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.open("a") as fh:
            fh.write("\n".join(lines) + "\n")

    def read(self) -> list[Alert]:
        """The newest state of every alert received (by fingerprint and start)."""
        if not self.path.is_file():
            return []
        latest: dict[tuple[str, str], Alert] = {}
        for line in self.path.read_text().splitlines():
            if line.strip():
                alert = Alert.from_alertmanager(json.loads(line))
                latest[(alert.fingerprint, alert.starts_at)] = alert
        return list(latest.values())


def _ts(text: str) -> pd.Timestamp | None:
    """An Alertmanager time as UTC (None for empty or the zero time Alertmanager sends for "not ended")."""
    if not text or text.startswith("0001-"):
        return None
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        return None
    return ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")


#: Prometheus' rule names carry this prefix (manifests/base/prometheus/rules); the trigger policy uses the
#: names the monitor gives its own alerts.
RULE_PREFIX = "CreditOps"


def received_in(alerts: Sequence[Alert], start: pd.Timestamp, end: pd.Timestamp) -> list[Alert]:
    """Received alerts that were firing during ``[start, end)``, named as the monitor names them.

    An alert counts in a window when it started before the window's end and had not ended by its start, so a
    resolved alert still counts in the windows it was firing in.
    """
    out = []
    for a in alerts:
        began, ended = _ts(a.starts_at), _ts(a.ends_at)
        if began is None or began >= end or (ended is not None and ended <= start):
            continue
        if a.status == "resolved" and ended is None:
            continue
        labels = dict(a.labels)
        labels["alertname"] = a.name.removeprefix(RULE_PREFIX)
        out.append(Alert(labels, a.annotations, "firing", a.starts_at, a.ends_at))
    return out


# --------------------------------------------------------------------------------------------------------
# the trigger's inputs


def champion_label(settings: Settings, run: MonitoringRun) -> tuple[str | None, datetime | None]:
    """The audit label of the served champion (``name@N``) and when it was registered.

    Without a registered champion in the audit log: the version with the newest window, registered never.
    """
    from mlflow.tracking import MlflowClient

    from creditops.governance.registry import CHAMPION, alias_version, tracking_uri_for

    name, uri = settings.mlflow.model_name, tracking_uri_for(settings.mlflow.tracking_uri)
    number = alias_version(uri, name, CHAMPION)
    created = MlflowClient(uri, uri).get_model_version(name, number).creation_timestamp if number else None
    label = f"{name}@{number}" if number else None
    if label is not None and any(w.model_version == label for w in run.windows):
        return label, datetime.fromtimestamp(created / 1000, UTC) if created else None
    return (run.windows[-1].model_version if run.windows else label), None


def retraining_state(
    history: DeploymentHistory, model_name: str, outcomes: pd.DataFrame, trained_at: datetime | None = None
) -> tuple[datetime | None, int]:
    """When the served model was last (re)trained, and how many outcomes matured after that.

    The last ``retrain_started`` of the history, else ``trained_at`` (when the champion was registered: a
    fresh deployment is not "never retrained"); outcomes count from then (all of them if neither is known).
    """
    started = [e for e in history.events(ENVIRONMENT, model_name) if e.event == RETRAIN_STARTED]
    last = trained_at if not started else datetime.fromisoformat(started[-1].ts.replace("Z", "+00:00"))
    if not len(outcomes) or "outcome_date" not in outcomes.columns:
        return last, 0
    dates = pd.to_datetime(outcomes["outcome_date"], utc=True, errors="coerce")
    new = int(dates.notna().sum()) if last is None else int((dates > pd.Timestamp(last)).sum())
    return last, new


def assess(
    settings: Settings,
    run: MonitoringRun,
    history: DeploymentHistory,
    *,
    received: Sequence[Alert] = (),
    outcomes: pd.DataFrame | None = None,
) -> LoopInputs:
    """The trigger policy's inputs from one monitoring run of the served champion.

    Args:
        settings: Monitoring thresholds, registry, model name.
        run: A monitoring run over the audit log.
        history: Where earlier retrainings are recorded.
        received: Alerts received from Alertmanager; each counts in every window it was firing in.
        outcomes: The outcome store (default: ``<workdir>/outcomes``).
    """
    from creditops.data.outcomes import load_outcome_store

    version, trained_at = champion_label(settings, run)
    mine = [w for w in run.windows if w.model_version == version]
    freq = pd.tseries.frequencies.to_offset(settings.monitoring.window)
    if mine:
        spans = [(pd.Timestamp(w.start, tz="UTC"), pd.Timestamp(w.end, tz="UTC")) for w in mine]
    elif received:
        began = min(t for t in (_ts(a.starts_at) for a in received) if t is not None)
        edges = pd.date_range(began.floor(freq), pd.Timestamp.now(tz="UTC").floor(freq) + freq, freq=freq)
        spans = list(zip(edges[:-1], edges[1:], strict=True))
    else:
        spans = []
    mine_by_start = {pd.Timestamp(w.start, tz="UTC"): w for w in mine}
    alerts: list[list[Alert]] = []
    for start, end in spans:
        window = mine_by_start.get(start)
        found = evaluate_alerts(window, settings.monitoring) if window is not None else []
        alerts.append(found + received_in(received, start, end))
    auc, matured = None, 0
    for w in reversed(mine):
        perf = w.performance or {}
        if finite(perf.get("auc")):
            auc, matured = float(perf["auc"]), int(perf.get("matured", 0))
            break
    store = load_outcome_store(settings.workdir / "outcomes") if outcomes is None else outcomes
    last, new = retraining_state(history, settings.mlflow.model_name, store, trained_at)
    return LoopInputs(version, [s.isoformat() for s, _ in spans], alerts, auc, matured, last, new)


# --------------------------------------------------------------------------------------------------------
# one turn


Retrain = Callable[[Settings, str], dict[str, Any]]
Canary = Callable[[Settings, str], Any]


def close_loop(
    settings: Settings,
    run: MonitoringRun,
    *,
    history: DeploymentHistory | None = None,
    received: Sequence[Alert] = (),
    now: datetime | None = None,
    retrain: Retrain | None = None,
    canary: Canary | None = None,
    actor: str = "monitoring",
) -> LoopResult:
    """Decide, record, and (when the policy says so) retrain and canary the challenger.

    Args:
        settings: Resolved settings.
        run: This turn's monitoring run.
        history: Deployment history (default: the configured one).
        received: Alerts received from Alertmanager.
        now: Decision time (default: now, UTC).
        retrain: Runs the retraining pipeline with a reason and returns its summary; ``None`` only decides
            (a dry run: the decision is printed and recorded, nothing is started).
        canary: Canaries a registered version against the champion (``None``: stop at the challenger).
        actor: Who acts, for the history.

    Returns:
        The decision with its inputs and what ran.
    """
    from creditops.deploy.commands import history_of

    history = history or history_of(settings)
    now = now or datetime.now(UTC)
    inputs = assess(settings, run, history, received=received)
    policy = settings.monitoring.retraining
    decision = decide_retraining(
        inputs.alerts,
        now=now,
        last_retrained_at=inputs.last_retrained_at,
        new_labelled_outcomes=inputs.new_labelled_outcomes,
        matured_auc=inputs.matured_auc,
        matured_outcomes=inputs.matured_outcomes,
        policy=policy,
    )
    model = settings.mlflow.model_name
    version = (inputs.model_version or "").rpartition("@")[2] or "-"
    details = {"decision": decision.to_dict(), "inputs": inputs.to_dict(), "dry_run": retrain is None}
    reason = "; ".join(decision.reasons) or "no reason"
    if decision.blockers:
        reason += " | blocked: " + "; ".join(decision.blockers)
    history.record(
        ENVIRONMENT, model, version, "retrain_decision", actor=actor, reason=reason, details=details
    )
    result = LoopResult(decision, inputs, events=["retrain_decision"])
    if not decision.retrain or retrain is None:
        return result
    why = "; ".join(decision.reasons)
    history.record(ENVIRONMENT, model, version, RETRAIN_STARTED, actor=actor, reason=why)
    result.events.append(RETRAIN_STARTED)
    summary = retrain(settings, why)
    result.retraining = summary
    registered = summary.get("registered_version")
    passing = ("pass", "not_applicable")
    failed = [g["name"] for g in summary.get("gates", []) if g.get("status") not in passing]
    event = "retrain_registered" if registered else "retrain_rejected"
    history.record(
        ENVIRONMENT, model, registered or version, event, actor=actor, reason=why,
        details={"run_id": summary.get("run_id"), "failed_gates": failed,
                 "champion_version": summary.get("champion_version")},
    )  # fmt: skip
    result.events.append(event)
    if registered and canary is not None:
        auto = policy.auto_promote or settings.deploy.auto_promote
        deploy = settings.deploy.model_copy(update={"auto_promote": auto})
        result.rollout = canary(settings.model_copy(update={"deploy": deploy}), str(registered))
        result.events.append(f"canary_{result.rollout.outcome}")
    return result


class LoopWorker:
    """Turns of the loop one at a time, in a background thread, so monitoring never waits for a retraining.

    :meth:`submit` while a turn is running is refused (the next monitoring round or alert asks again, and
    the cooldown keeps a finished retraining from starting twice).
    """

    def __init__(
        self, turn: Callable[[], LoopResult], on_error: Callable[[BaseException], None] | None = None
    ) -> None:
        self.turn = turn
        self.on_error = on_error or (lambda exc: log.error("retraining loop failed: %s", exc))
        self.results: list[LoopResult] = []
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self) -> bool:
        """Start a turn unless one is running; True when started."""
        if not self._busy.acquire(blocking=False):
            return False

        def work() -> None:
            try:
                self.results.append(self.turn())
            except Exception as exc:  # noqa: BLE001 - a failed turn is reported; the service goes on
                self.on_error(exc)
            finally:
                self._busy.release()

        self._thread = threading.Thread(target=work, name="retraining-loop", daemon=True)
        self._thread.start()
        return True

    def join(self, timeout: float | None = None) -> None:
        """Wait for the running turn (if any)."""
        if self._thread is not None:
            self._thread.join(timeout)
