"""What the ``creditops deploy ...`` / ``creditops rollout ...`` commands and the demo's last step do.

``stage``: serve a registered version on a staging endpoint and run the smoke tests; ``canary_local``: a
champion and a candidate predictor behind the router, the controller judging every step, approval and alias
moves at the end; ``history``: the deployment history table or "who served prod at X".
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

from creditops.config import CanaryConfig, Settings
from creditops.deploy.controller import RolloutResult, StepReport, run_canary
from creditops.deploy.history import DeploymentHistory
from creditops.deploy.local import SteadyLoad, model_server
from creditops.deploy.release import actor_name, approve, promote_to_champion, set_alias, smoke_test
from creditops.deploy.router import AuditCounter, Backend, LocalTarget, LocalWindow, Router, serving
from creditops.errors import CreditOpsError


def history_of(settings: Settings) -> DeploymentHistory:
    """The configured deployment history."""
    return DeploymentHistory(settings.deploy.history_url)


@contextmanager
def served_version(settings: Settings, version: str, name: str) -> Iterator[str]:
    """One predictor for registered ``version`` (Feast + audit as configured); yields its URL."""
    from creditops.serve_local import predictor_command

    model_uri = f"models:/{settings.mlflow.model_name}/{version}"

    def cmd(port: int) -> list[str]:
        return predictor_command(settings, model_uri, port)[0]

    env = predictor_command(settings, model_uri, 0)[1]
    with model_server(cmd, settings.serving.model_name, settings.workdir / f"{name}.log", env=env) as url:
        yield url


def stage(settings: Settings, version: str, rows: list[dict[str, Any]], console: Console) -> bool:
    """Deploy ``version`` to staging (its own endpoint), run the smoke tests, record the outcome."""
    model = settings.mlflow.model_name
    history = history_of(settings)
    history.record("staging", model, version, "staged", serving=version, actor=actor_name())
    with served_version(settings, version, f"staging-v{version}") as url:
        report = smoke_test(url, settings.serving.model_name, rows)
    event = "smoke_passed" if report.ok else "smoke_failed"
    history.record("staging", model, version, event, actor=actor_name(), details=report.detail)
    for check, ok in report.checks.items():
        console.print(
            f"  staging smoke {check}: {'[green]pass[/]' if ok else '[red]FAIL[/]'} ({report.detail[check]})"
        )
    return report.ok


def print_report(console: Console, report: StepReport, started: float) -> None:
    """One analysis check as a line per judge."""
    head = f"[bold]t+{report.at - started:5.1f}s canary {report.weight:3d} %[/] -> {report.action.kind}"
    console.print(f"{head}: {report.action.reason}")
    for v in report.verdicts:
        colour = {"pass": "green", "fail": "red", "inconclusive": "yellow"}[v.status]  # nosec B105  # colours
        console.print(f"    [{colour}]{v.status:12s}[/] {v.name:15s} {v.detail}")


#: Share of the validated score PSI a canary may exceed it by (see :func:`canary_local`).
VALIDATED_PSI_SLACK = 0.25


def validated_score_psi(tracking_uri: str, model: str, candidate: str, champion: str) -> float | None:
    """The score PSI the retraining pipeline measured between ``candidate`` and ``champion``, if it did.

    Read from the candidate's registered run (``test.champion_score_psi``), and only when it was measured
    against this same champion version (``test.champion_version``); None otherwise (e.g. a model trained by
    the training pipeline, or validated against an earlier champion).
    """
    from mlflow.tracking import MlflowClient

    from creditops.governance.registry import tracking_uri_for

    uri = tracking_uri_for(tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run_id = client.get_model_version(model, str(candidate)).run_id
    metrics = client.get_run(run_id).data.metrics if run_id else {}
    against = metrics.get("test.champion_version")
    if "test.champion_score_psi" not in metrics or against is None or str(int(against)) != str(champion):
        return None
    return float(metrics["test.champion_score_psi"])


def canary_local(
    settings: Settings,
    candidate: str,
    console: Console,
    *,
    champion: str | None = None,
    load_instances: Callable[[int], list[dict[str, Any]]] | None = None,
    approver: Callable[[], bool] | None = None,
    cfg: CanaryConfig | None = None,
    port: int | None = None,
) -> RolloutResult:
    """Canary ``candidate`` against the champion on the local target, then promote or roll back.

    The router listens on ``deploy.router_host:router_port`` for real clients; ``load_instances`` adds a
    steady client stream of its own (the demo); ``port`` overrides the configured router port (0: any free
    port). Promotion needs an approval unless ``deploy.auto_promote``.
    """
    from creditops.governance.registry import CHAMPION, alias_version

    model, tracking = settings.mlflow.model_name, settings.mlflow.tracking_uri
    champion = champion or alias_version(tracking, model, CHAMPION)
    if champion is None:
        raise CreditOpsError(f"{model} has no champion to canary against: promote a first version")
    cfg = cfg or settings.deploy.canary
    expected = validated_score_psi(tracking, model, candidate, champion)
    if expected is not None:
        # PSI grows noisier as it grows (its large values come from nearly empty bins): allow a quarter of the
        # validated shift on top of it, and never less than the configured threshold
        allowance = max(cfg.psi_threshold, VALIDATED_PSI_SLACK * expected)
        cfg = cfg.model_copy(update={"psi_threshold": expected + allowance})
        console.print(
            f"v{candidate} was validated against champion v{champion} at score PSI {expected:.3f} on the "
            f"retraining hold-out: the canary's score-shift threshold is {cfg.psi_threshold:.3f}"
        )
    history = history_of(settings)
    rollout_id = uuid.uuid4().hex[:12]
    set_alias(tracking, model, "challenger", candidate)
    with ExitStack() as stack:
        champion_url = stack.enter_context(served_version(settings, champion, f"prod-v{champion}"))
        canary_url = stack.enter_context(served_version(settings, candidate, f"canary-v{candidate}"))
        router = Router(Backend(champion_url, champion), settings.serving.model_name, rollout_id=rollout_id)
        url = stack.enter_context(
            serving(
                router.app, settings.deploy.router_host, settings.deploy.router_port if port is None else port
            )
        )
        console.print(f"router on {url} (champion v{champion}, canary v{candidate}, rollout {rollout_id})")
        if load_instances is not None:
            path = f"{url}/v1/models/{settings.serving.model_name}:predict"
            stack.enter_context(SteadyLoad(path, load_instances, threads=2, caller_id="demo-stream"))
        begun = {"rollout": rollout_id, "validated_score_psi": expected, "psi_threshold": cfg.psi_threshold}
        history.record("prod", model, candidate, "canary_started", actor=actor_name(), details=begun)
        started: list[float] = []
        awaiting: list[float] = []

        def on_report(r: StepReport) -> None:
            if not started:
                started.append(r.at - cfg.check_every_s)
            print_report(console, r, started[0])
            if r.action.kind == "advance":
                history.record(
                    "prod", model, candidate, "step", details={"weight": r.weight, "rollout": rollout_id}
                )
            elif r.action.kind == "await_approval" and not awaiting:
                awaiting.append(r.at)
                history.record(
                    "prod", model, candidate, "awaiting_approval", reason=r.action.reason,
                    details={"weight": r.weight, "rollout": rollout_id},
                )  # fmt: skip

        result = run_canary(
            LocalTarget(router, Backend(canary_url, candidate)),
            LocalWindow(router, AuditCounter(settings.audit.url, rollout_id)),
            cfg,
            auto_promote=settings.deploy.auto_promote,
            approver=approver or (lambda: history.approval(model, candidate) is not None),
            on_report=on_report,
        )
    final = result.reports[-1].verdicts if result.reports else []
    details = {"rollout": rollout_id, "verdicts": [v.to_dict() for v in final]}
    if result.outcome == "promoted":
        promote_to_champion(
            history, tracking, model, candidate, auto=settings.deploy.auto_promote, details=details
        )
        console.print(f"[green]v{candidate} promoted to champion[/] ({result.reason})")
    else:
        history.record(
            "prod", model, candidate, "rolled_back", serving=champion, reason=result.reason, details=details
        )
        console.print(f"[red]v{candidate} rolled back[/]: {result.reason}; v{champion} stays champion")
    return result


def print_history(
    settings: Settings, console: Console, at: str | None, environment: str | None, limit: int | None = None
) -> int:
    """The history table, or (with ``at``) which version served the environment then and who approved it."""
    history = history_of(settings)
    model = settings.mlflow.model_name
    if at:
        env = environment or "prod"
        answer = history.served_at(env, model, at)
        if answer is None:
            console.print(f"no version of {model} served {env} at {at}")
            return 1
        approval = (
            f"approved by {answer.approval.actor} at {answer.approval.ts}: {answer.approval.reason}"
            if answer.approval
            else f"no recorded approval ({answer.event.actor or 'automatic'})"
        )
        console.print(f"{model} v{answer.version} served {env} at {at} (since {answer.since}); {approval}")
        return 0
    table = Table(title=f"deployment history of {model}")
    for column in ("ts", "env", "version", "event", "serving", "actor", "reason"):
        table.add_column(column)
    events = history.events(environment, model)
    for e in events[-limit:] if limit else events:
        table.add_row(
            e.ts,
            e.environment,
            e.version,
            e.event,
            e.serving,
            e.actor,
            e.reason or json.dumps(e.details)[:60],
        )
    console.print(table)
    return 0


def record_approval(settings: Settings, version: str, actor: str, reason: str, console: Console) -> int:
    """``creditops deploy approve``."""
    event = approve(history_of(settings), settings.mlflow.model_name, version, actor=actor, reason=reason)
    console.print(f"approval recorded: v{version} by {event.actor} at {event.ts}: {event.reason}")
    return 0


def promote_recorded(settings: Settings, version: str, console: Console) -> int:
    """``creditops deploy promote``: champion alias to ``version`` (needs an approval unless auto)."""
    event = promote_to_champion(
        history_of(settings),
        settings.mlflow.tracking_uri,
        settings.mlflow.model_name,
        version,
        auto=settings.deploy.auto_promote,
    )
    console.print(f"v{version} is champion (by {event.actor}, {event.reason})")
    return 0


def experiment_local(
    settings: Settings,
    candidate: str,
    mode: str,
    duration_s: float,
    console: Console,
    split: int | None = None,
) -> dict[str, Any]:
    """Shadow or A/B test ``candidate`` against the champion for ``duration_s`` on the local router; report.

    Clients send their traffic to the router (``deploy.router_host:router_port``) meanwhile; the champion
    keeps answering (shadow) or shares the applicants by id hash (A/B). Nothing is promoted: the report
    (per-arm metrics and significance tests) is printed, recorded in the history and returned.
    """
    import time

    from creditops.deploy.experiments import compare_arms
    from creditops.governance.registry import CHAMPION, alias_version

    model, tracking = settings.mlflow.model_name, settings.mlflow.tracking_uri
    champion = alias_version(tracking, model, CHAMPION)
    if champion is None:
        raise CreditOpsError(f"{model} has no champion to compare with: promote a first version")
    rollout_id = uuid.uuid4().hex[:12]
    with ExitStack() as stack:
        champion_url = stack.enter_context(served_version(settings, champion, f"prod-v{champion}"))
        challenger_url = stack.enter_context(served_version(settings, candidate, f"{mode}-v{candidate}"))
        router = Router(Backend(champion_url, champion), settings.serving.model_name, rollout_id=rollout_id)
        url = stack.enter_context(
            serving(router.app, settings.deploy.router_host, settings.deploy.router_port)
        )
        if mode == "shadow":
            router.start_shadow(Backend(challenger_url, candidate))
        else:
            router.start_ab(Backend(challenger_url, candidate), split or settings.deploy.ab_split)
        console.print(f"{mode} test of v{candidate} against v{champion} on {url} for {duration_s:.0f} s")
        start = time.monotonic()
        time.sleep(duration_s)
        challenger, champion_arm = router.window(start, AuditCounter(settings.audit.url, rollout_id))
    report = compare_arms(challenger, champion_arm, alpha=settings.deploy.canary.alpha)
    report["audit"] = {
        "challenger_records": challenger.audited,
        "challenger_answers": challenger.audit_answers,
    }
    history_of(settings).record(
        "prod", model, candidate, f"{mode}_report", details={"rollout": rollout_id, **report}
    )
    console.print_json(json.dumps(report, default=str))
    return report
