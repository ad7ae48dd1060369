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
    return demo_serving(settings, summary, console)


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
    add_monitoring_commands(sub)
    return parser


# --------------------------------------------------------------------------------------------------------
# monitoring: `creditops monitor run|serve|receive`, `creditops outcomes generate|ingest`


def _monitor_run(args: argparse.Namespace) -> Any:
    from creditops.monitoring.app import monitor_once

    return monitor_once(
        _settings(args), args.reference or (), audit_url=args.audit_url, start=args.start, end=args.end,
        applications=args.applications, as_of=args.as_of,
    )  # fmt: skip


def _dispatcher(settings: Settings) -> Any:
    from creditops.monitoring.alerts import AlertDispatcher, LogSink, WebhookSink

    sinks: list[Any] = [LogSink()]
    if settings.monitoring.webhook_url:
        sinks.append(WebhookSink(settings.monitoring.webhook_url))
    return AlertDispatcher(sinks)


def cmd_monitor_run(args: argparse.Namespace) -> int:
    """One monitoring run over the audit log: print the windows, send alerts, write JSON / HTML."""
    import logging

    from creditops.monitoring.alerts import evaluate_alerts

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    settings = _settings(args)
    run = _monitor_run(args)
    table = Table(title=f"monitoring: {run.n_decisions:,} decisions in {run.seconds:.2f} s")
    for col in ("version", "window", "n", "approve", "mean PD / expected", "score PSI", "drifted", "AUC"):
        table.add_column(col)
    for w in run.windows:
        auc = (w.performance or {}).get("auc")
        table.add_row(
            w.model_version, w.start[:16], f"{w.n:,}", f"{w.approval_rate:.1%}", f"{w.mean_pd_ratio:.2f}",
            f"{w.score_psi:.3f}", ", ".join(w.drifted()) or "-", "-" if auc is None else f"{auc:.3f}",
        )  # fmt: skip
    console.print(table)
    alerts = [a for w in run.latest().values() for a in evaluate_alerts(w, settings.monitoring)]
    _dispatcher(settings).process(alerts)
    if args.json:
        Path(args.json).write_text(json.dumps(run.to_dict(), default=str) + "\n")
        console.print(f"wrote {args.json}")
    if args.report:
        from creditops.monitoring.report import render_report

        console.print(f"wrote {render_report(run, args.report, config=settings.monitoring)}")
    return 1 if any(a.severity == "critical" for a in alerts) and args.fail_on_critical else 0


def cmd_monitor_serve(args: argparse.Namespace) -> int:
    """The monitor process: run every --interval seconds, /metrics for Prometheus, alerts to the sinks."""
    import logging

    from creditops.monitoring.metrics import MonitorService

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    settings = _settings(args)
    service = MonitorService(
        lambda: _monitor_run(args), _dispatcher(settings), settings.monitoring, interval=args.interval
    )
    port = service.serve_metrics(settings.monitoring.host, args.port or settings.monitoring.port)
    console.print(
        f"monitor: /metrics on http://{settings.monitoring.host}:{port}/metrics every {args.interval} s"
    )
    try:
        service.loop()
    finally:
        service.stop()
    return 0


def cmd_monitor_receive(args: argparse.Namespace) -> int:
    """An Alertmanager-compatible webhook receiver that prints the alerts it gets (blocks)."""
    import threading

    from creditops.monitoring.alerts import AlertReceiver

    settings = _settings(args)

    def show(alerts: list[Any]) -> None:
        for a in alerts:
            console.print(
                f"{a.status} [{a.severity}] {a.name} {dict(a.labels)}: {a.annotations.get('summary', '')}"
            )

    receiver = AlertReceiver(show, settings.monitoring.host, args.port, token=args.token)
    console.print(f"receiving alerts on {receiver.url}")
    with receiver:
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


def cmd_outcomes_generate(args: argparse.Namespace) -> int:
    """Synthetic outcomes for audited decisions (configurable delay and concept drift) as a CSV file."""
    import pandas as pd

    from creditops.data.outcomes import synthetic_outcomes
    from creditops.monitoring.source import read_audit_decisions

    settings = _settings(args)
    d = read_audit_decisions(args.audit_url or settings.audit.url, [])
    frame = pd.DataFrame({"prediction_id": d.prediction_id, "ts": d.ts, "pd": d.pd})
    if (d.applicant_id != "").all():
        frame["applicant_id"] = d.applicant_id
        frame = frame.drop(columns="prediction_id")
    out = synthetic_outcomes(
        frame, seed=args.seed, horizon_days=args.horizon_days, delay_days=args.delay_days,
        concept_drift=args.concept_drift, rate_shift=args.rate_shift, drift_from=args.drift_from,
        as_of=args.as_of,
    )  # fmt: skip
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.output, index=False)
    console.print(f"{len(out):,} outcomes ({int(out['defaulted'].sum()):,} defaults) -> {args.output}")
    return 0


def cmd_outcomes_ingest(args: argparse.Namespace) -> int:
    """Validate an outcome file and merge it into the outcome store (bad rows quarantined)."""
    from creditops.data.outcomes import ingest_outcomes

    settings = _settings(args)
    result = ingest_outcomes(args.file, settings.workdir / "outcomes")
    console.print(
        f"{result.rows_in:,} rows: {result.rows_accepted:,} accepted, {result.rows_quarantined:,} "
        f"quarantined; store {result.store_path} holds {result.store_rows:,}"
    )
    if result.quarantine_path:
        console.print(f"[yellow]quarantined rows[/] -> {result.quarantine_path}")
    return 0


def add_monitoring_commands(sub: Any) -> None:
    """Register the ``monitor`` and ``outcomes`` command groups."""
    monitor = sub.add_parser(
        "monitor", help="monitor served decisions (drift, performance, fairness, alerts)"
    )
    msub = monitor.add_subparsers(dest="monitor_command", required=True)
    for name, func, help_ in (
        ("run", cmd_monitor_run, "one monitoring run over the audit log"),
        ("serve", cmd_monitor_serve, "the monitor process: periodic runs, /metrics, alerts"),
    ):
        p = msub.add_parser(name, help=help_)
        p.set_defaults(func=func)
        p.add_argument(
            "--reference", action="append",
            help="monitoring reference: bundle dir, reference JSON or models:/name/N (repeatable; registered "
            "versions in the audit log are found in the registry)",
        )  # fmt: skip
        p.add_argument("--audit-url", help="audit log URL (default: from config)")
        p.add_argument("--start", help="first decision time (ISO, inclusive)")
        p.add_argument("--end", help="last decision time (ISO, exclusive)")
        p.add_argument("--as-of", help="observation date for outcomes (default: all ingested)")
        p.add_argument("--applications", type=Path, help="application records with protected attributes")
        if name == "run":
            p.add_argument("--json", type=Path, help="write the run as JSON")
            p.add_argument("--report", type=Path, help="write the HTML monitoring dashboard")
            p.add_argument(
                "--fail-on-critical", action="store_true", help="exit 1 when a critical alert fires"
            )
        else:
            p.add_argument("--interval", type=float, default=300.0, help="seconds between runs")
            p.add_argument("--port", type=int, help="metrics port (default: config monitoring.port)")
    p = msub.add_parser("receive", help="Alertmanager-compatible webhook receiver that prints alerts")
    p.set_defaults(func=cmd_monitor_receive)
    p.add_argument("--port", type=int, default=9109)
    p.add_argument("--token", help="require this bearer token")
    outcomes = sub.add_parser("outcomes", help="realised outcomes of served applicants")
    osub = outcomes.add_subparsers(dest="outcomes_command", required=True)
    p = osub.add_parser("generate", help="synthetic outcomes for audited decisions")
    p.set_defaults(func=cmd_outcomes_generate)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--audit-url")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--horizon-days", type=int, default=365)
    p.add_argument("--delay-days", type=int, default=30)
    p.add_argument(
        "--concept-drift", type=float, default=0.0, help="weight of a risk factor the model cannot see"
    )
    p.add_argument("--rate-shift", type=float, default=0.0, help="log-odds added to the true default risk")
    p.add_argument("--drift-from", help="drift applies to decisions from this time")
    p.add_argument("--as-of", help="only outcomes known by this date")
    p = osub.add_parser(
        "ingest", help="load realised outcomes (applicant_id|prediction_id, outcome_date, defaulted)"
    )
    p.set_defaults(func=cmd_outcomes_ingest)
    p.add_argument("file", type=Path)


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
