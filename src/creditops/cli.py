"""``creditops`` command line: the edge where configuration is parsed and errors become messages.

Framework adapters (the KFP local runner, the KServe server, Feast) are imported lazily here, only by the
commands that need them, so the core stays importable without them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from creditops.config import Settings, load_config
from creditops.errors import CreditOpsError

console = Console()


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "applicants", None):
        overrides.setdefault("data", {})["n_applicants"] = args.applicants
    if getattr(args, "source", None):
        overrides.setdefault("data", {})["source"] = args.source
    if getattr(args, "spec", None):
        overrides.setdefault("data", {})["spec_path"] = str(args.spec)
    if getattr(args, "trials", None):
        overrides.setdefault("training", {})["n_trials"] = args.trials
    return load_config(args.config, overrides).resolved()


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest a source into a content-addressed snapshot."""
    from creditops.data.ingest import ingest

    settings = _settings(args)
    info = ingest(
        settings.data.source,
        out_root=settings.workdir / "snapshots",
        n_applicants=settings.data.n_applicants,
        seed=settings.data.seed,
        spec_path=settings.data.spec_path,
    )
    console.print(f"snapshot [bold]{info.version}[/] at {info.path}")
    for table, rows in info.row_counts.items():
        console.print(f"  {table}: {rows:,} rows")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Run the KFP training pipeline locally and print its summary."""
    summary = _train(_settings(args))
    return 0 if summary.get("registered_version") else 1


def _train(settings: Settings) -> dict[str, Any]:
    from pipelines.local import run_training

    console.rule("training pipeline (KFP local runner)")
    summary = run_training(settings)
    print_summary(summary)
    return summary


_HEADLINE_METRICS = (
    "cv_auc_mean",
    "cv_auc_std",
    "test.auc",
    "test.gini",
    "test.ks",
    "test.brier",
    "test.precision",
    "test.recall",
    "test.f1",
    "test.fpr",
)


def print_summary(summary: dict[str, Any]) -> None:
    """Render a training run summary: data version, best params, headline metrics, gates, registry, card."""
    metrics = summary.get("metrics", {})
    table = Table(title="training run", show_header=False)
    table.add_row("data version", str(summary.get("data_version")))
    params = {
        k: round(v, 4) if isinstance(v, float) else v for k, v in summary.get("best_params", {}).items()
    }
    table.add_row("best params", json.dumps(params, sort_keys=True))
    table.add_row("metrics", "  ".join(f"{k}={metrics[k]:.4f}" for k in _HEADLINE_METRICS if k in metrics))
    for gate in summary.get("gates", []):
        mark = "[green]pass[/]" if gate["passed"] else "[red]FAIL[/]"
        value = "n/a" if gate["value"] is None else f"{gate['value']:.4f}"  # None: not assessed (see notes)
        table.add_row(gate["name"], f"{mark}  {value} {gate['op']} {gate['threshold']}")
    version = summary.get("registered_version")
    registered = (
        f"{summary.get('model_name')} v{version} (alias challenger)"
        if version
        else ("[red]not registered[/]: " + summary.get("gate_summary", "a gate failed"))
    )
    table.add_row("registered", registered)
    table.add_row("model card", str(summary.get("model_card_html")))
    table.add_row("step logs", str(summary.get("log")))
    console.print(table)


def cmd_compile(args: argparse.Namespace) -> int:
    """Compile the pipelines to KFP YAML."""
    from pipelines.training import compile_pipeline

    console.print(f"wrote {compile_pipeline()}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Batch-score a CSV/Parquet file with reason codes; every decision is audited."""
    from creditops.artifact import load_bundle
    from creditops.batch import score_file
    from creditops.governance.audit import AuditLog
    from creditops.governance.registry import resolve

    settings = _settings(args)
    bundle = load_bundle(resolve(settings.mlflow.tracking_uri, args.model))
    audit = None if args.no_audit else AuditLog.open(settings.audit.url)
    result = score_file(bundle, args.input, args.output, audit=audit, caller_id=args.caller_id)
    console.print(
        f"scored {result.rows_scored:,} of {result.rows_in:,} rows in {result.seconds:.1f} s "
        f"({result.rows_per_minute:,.0f} rows/min) -> {result.output_path}; decisions {result.decisions}; "
        f"audited {result.audited:,}"
    )
    if result.rows_quarantined:
        console.print(f"[yellow]{result.rows_quarantined:,} rows quarantined[/] -> {result.quarantine_path}")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Recompute the audit hash chains."""
    from creditops.governance.audit import AuditLog

    settings = _settings(args)
    report = AuditLog.open(args.url or settings.audit.url).verify()
    console.print(report)
    return 0 if report.ok else 1


def cmd_promote(args: argparse.Namespace) -> int:
    """Move the ``champion`` alias to a registered version."""
    from creditops.governance.registry import promote

    settings = _settings(args)
    promote(settings.mlflow.tracking_uri, settings.mlflow.model_name, args.version)
    console.print(f"{settings.mlflow.model_name} v{args.version} is now champion")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a registered model with the local KServe model server (blocks)."""
    from creditops.serve_local import serve_command

    return serve_command(_settings(args), args.model, args.port)


def cmd_demo(args: argparse.Namespace) -> int:
    """Train, register, serve, score a few applicants over HTTP, verify the audit chain."""
    from creditops.serve_local import demo_serving

    settings = _settings(args)
    summary = _train(settings)
    if not summary.get("registered_version"):
        console.print("[red]no model registered: a validation gate failed; see the summary above[/]")
        return 1
    return demo_serving(settings, summary, console) or demo_rollout(settings, summary)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one sub-command per platform action)."""
    parser = argparse.ArgumentParser(prog="creditops", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="YAML config (default: embedded defaults)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.set_defaults(func=func)
        return p

    for name, func, help_ in (
        ("demo", cmd_demo, "end to end on the embedded defaults: train, register, serve, score, audit"),
        ("train", cmd_train, "run the KFP training pipeline locally"),
        ("ingest", cmd_ingest, "ingest a source into a content-addressed snapshot"),
    ):
        p = add(name, func, help_)
        p.add_argument("--source", choices=["synthetic", "german_credit", "hmda", "spec"])
        p.add_argument("--spec", type=Path, help="dataset spec YAML (with --source spec)")
        p.add_argument("--applicants", type=int, help="synthetic applicants to generate")
        if name != "ingest":
            p.add_argument("--trials", type=int, help="Optuna trials")
    add("compile", cmd_compile, "compile the pipelines to KFP YAML")
    p = add("score", cmd_score, "batch-score a file with reason codes")
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--model", default="models:/credit-pd@challenger", help="bundle dir or models:/name@alias")
    p.add_argument("--caller-id", default="batch")
    p.add_argument(
        "--no-audit", action="store_true", help="skip audit records (not for production decisions)"
    )
    p = add("serve", cmd_serve, "serve a model with the local KServe model server")
    p.add_argument("--model", default="models:/credit-pd@challenger", help="bundle dir or models:/name@alias")
    p.add_argument("--port", type=int)
    p = add("promote", cmd_promote, "move the champion alias to a model version")
    p.add_argument("--version", required=True)
    audit = sub.add_parser("audit", help="audit log operations")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    p = audit_sub.add_parser("verify", help="verify the hash chains of the audit log")
    p.add_argument("--url", help="audit log URL (default: from config)")
    p.set_defaults(func=cmd_audit_verify)
    add_deploy_commands(sub)
    return parser


# --------------------------------------------------------------------------------------------------------
# deploy / rollout (creditops.deploy)


def demo_rollout(settings: Settings, summary: dict[str, Any]) -> int:
    """The demo's last step: canary the new model over a live stream of applicants scored by id."""
    import time

    import pandas as pd

    from creditops.config import CanaryConfig
    from creditops.deploy.commands import canary_local, history_of, stage
    from creditops.deploy.release import approve, promote_to_champion
    from creditops.governance.registry import CHAMPION, alias_version

    model, tracking = settings.mlflow.model_name, settings.mlflow.tracking_uri
    new = str(summary["registered_version"])
    champion = alias_version(tracking, model, CHAMPION)
    history = history_of(settings)
    if champion is None:
        approve(history, model, new, actor="demo", reason="first deploy: no earlier version to compare with")
        promote_to_champion(history, tracking, model, new)
        champion = new
        console.print(
            f"[yellow]first deploy: v{new} is champion; the canary below is judged against the same model "
            "(run the demo again to roll a new version out against it)[/]"
        )
    ids = [
        int(i) for i in pd.read_parquet(summary["entities_path"], columns=["applicant_id"])["applicant_id"]
    ]
    t0 = time.monotonic()
    console.rule(f"staging: v{new} on its own endpoint, integration smoke tests")
    if not stage(settings, new, [{"applicant_id": i} for i in ids[:5]], console):
        console.print(f"[red]v{new} failed the staging smoke tests: not rolled out[/]")
        return 1

    def instances(i: int) -> list[dict[str, Any]]:
        start = (i * 20) % max(len(ids) - 20, 1)
        return [{"applicant_id": a} for a in ids[start : start + 20]]

    def approver() -> bool:
        approve(history, model, new, actor="demo", reason="make demo: canary analysis passed every step")
        return True

    console.rule(f"canary rollout of v{new} against champion v{champion} (live stream of scored applicants)")
    cfg = CanaryConfig(interval_s=6, check_every_s=2, threshold=2, progress_deadline_s=180)
    result = canary_local(
        settings,
        new,
        console,
        champion=champion,
        load_instances=instances,
        approver=approver,
        cfg=cfg,
        port=0,
    )
    console.print(f"registered -> staging -> canary -> approved -> champion: {time.monotonic() - t0:.0f} s")
    return 0 if result.outcome == "promoted" else 1


def cmd_deploy_stage(args: argparse.Namespace) -> int:
    """Serve a registered version on a staging endpoint and run the integration smoke tests."""
    from creditops.artifact import load_bundle
    from creditops.deploy.commands import stage
    from creditops.governance.registry import resolve

    settings = _settings(args)
    bundle = load_bundle(
        resolve(settings.mlflow.tracking_uri, f"models:/{settings.mlflow.model_name}/{args.version}")
    )
    rows = json.loads(bundle.reference[list(bundle.manifest.features)].head(5).to_json(orient="records"))
    return 0 if stage(settings, str(args.version), rows, console) else 1


def cmd_deploy_approve(args: argparse.Namespace) -> int:
    """Record an approval (who, why) for promoting a version to production champion."""
    from creditops.deploy.commands import record_approval

    return record_approval(_settings(args), str(args.version), args.by, args.reason, console)


def cmd_deploy_promote(args: argparse.Namespace) -> int:
    """Make an approved version the champion (MLflow aliases + deployment history)."""
    from creditops.deploy.commands import promote_recorded

    return promote_recorded(_settings(args), str(args.version), console)


def cmd_deploy_history(args: argparse.Namespace) -> int:
    """Print the deployment history, or which version served an environment at a date and who approved it."""
    from creditops.deploy.commands import print_history

    return print_history(_settings(args), console, args.at, args.env)


def cmd_rollout_canary(args: argparse.Namespace) -> int:
    """Canary a registered version against the champion on the local target (router + one server each)."""
    from creditops.deploy.commands import canary_local

    settings = _settings(args)
    if settings.deploy.target != "local":
        raise CreditOpsError(
            "`creditops rollout canary` drives the local target; deploy.target is " + settings.deploy.target
        )
    result = canary_local(settings, str(args.version), console)
    return 0 if result.outcome == "promoted" else 1


def cmd_rollout_experiment(args: argparse.Namespace) -> int:
    """Shadow or A/B test a registered version against the champion on the local router; print the report."""
    from creditops.deploy.commands import experiment_local

    split = getattr(args, "split", None)
    experiment_local(_settings(args), str(args.version), args.rollout_command, args.duration, console, split)
    return 0


def add_deploy_commands(sub: Any) -> None:
    """The ``deploy`` and ``rollout`` command groups."""
    deploy = sub.add_parser("deploy", help="environments, approvals, promotion and the deployment history")
    deploy_sub = deploy.add_subparsers(dest="deploy_command", required=True)
    p = deploy_sub.add_parser("stage", help="serve a version on staging and run the smoke tests")
    p.add_argument("--version", required=True)
    p.set_defaults(func=cmd_deploy_stage)
    p = deploy_sub.add_parser("approve", help="record who approves promoting a version, and why")
    p.add_argument("--version", required=True)
    p.add_argument("--by", required=True, help="who approves")
    p.add_argument("--reason", required=True, help="why")
    p.set_defaults(func=cmd_deploy_approve)
    p = deploy_sub.add_parser("promote", help="make an approved version the production champion")
    p.add_argument("--version", required=True)
    p.set_defaults(func=cmd_deploy_promote)
    p = deploy_sub.add_parser("history", help="deployment history; --at DATE: who served prod then")
    p.add_argument("--at", help="date or ISO time (UTC)")
    p.add_argument("--env", choices=["dev", "staging", "prod"])
    p.set_defaults(func=cmd_deploy_history)
    rollout = sub.add_parser("rollout", help="progressive delivery of a registered version")
    rollout_sub = rollout.add_subparsers(dest="rollout_command", required=True)
    p = rollout_sub.add_parser("canary", help="canary a version against the champion with automatic analysis")
    p.add_argument("--version", required=True)
    p.set_defaults(func=cmd_rollout_canary)
    p = rollout_sub.add_parser(
        "shadow", help="mirror traffic to a version (audited as shadow, never returned)"
    )
    p.add_argument("--version", required=True)
    p.add_argument("--duration", type=float, default=600.0, help="seconds")
    p.set_defaults(func=cmd_rollout_experiment)
    p = rollout_sub.add_parser("ab", help="A/B test a version against the champion (sticky by applicant id)")
    p.add_argument("--version", required=True)
    p.add_argument("--duration", type=float, default=600.0, help="seconds")
    p.add_argument(
        "--split", type=int, help="percent of applicants on the new version (default deploy.ab_split)"
    )
    p.set_defaults(func=cmd_rollout_experiment)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: user errors print one clear line and exit 2, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CreditOpsError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
