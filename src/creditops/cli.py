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
from rich.markup import escape
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
    if getattr(args, "workdir", None):
        overrides["workdir"] = str(args.workdir)
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
        warn=_warn,
    )
    console.print(f"snapshot [bold]{info.version}[/] at {info.path}", soft_wrap=True)
    for table, rows in info.row_counts.items():
        console.print(f"  {table}: {rows:,} rows")
    return 0


def _warn(line: str) -> None:
    console.print(f"[yellow]warning:[/] {escape(line)}", soft_wrap=True)


def preflight(settings: Settings) -> None:
    """Check the configured source the way the ingest step will, before any pipeline step starts.

    A dataset-spec mistake (or a protected attribute's source listed as a feature) then ends the command
    with one line instead of a failed pipeline step; warnings are printed.

    Raises:
        DataError: The spec or its data cannot be trained on as declared.
    """
    from creditops.data.ingest import check_builtin_lineage, load_source

    if settings.data.source == "synthetic":
        check_builtin_lineage()
    else:
        load_source(settings.data.source, settings.data.spec_path, warn=_warn)


def cmd_train(args: argparse.Namespace) -> int:
    """Run the KFP training pipeline locally and print its summary."""
    summary = _train(_settings(args))
    return 0 if summary.get("registered_version") else 1


def _train(settings: Settings) -> dict[str, Any]:
    from pipelines.local import run_training

    preflight(settings)
    if console.is_terminal:
        console.rule("training pipeline (KFP local runner)")
    else:
        print("training pipeline (KFP local runner)", flush=True)
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


def _plain_summary(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary as (label, text) rows without markup: what a pipe or a log file receives."""
    metrics = summary.get("metrics", {})
    params = {
        k: round(v, 4) if isinstance(v, float) else v for k, v in summary.get("best_params", {}).items()
    }
    rows = [
        ("data version", str(summary.get("data_version"))),
        ("best params", json.dumps(params, sort_keys=True)),
        ("metrics", "  ".join(f"{k}={metrics[k]:.4f}" for k in _HEADLINE_METRICS if k in metrics)),
    ]
    for gate in summary.get("gates", []):
        word = gate.get("status") or ("pass" if gate["passed"] else "FAIL")
        value = "n/a" if gate["value"] is None else f"{gate['value']:.4f}"
        rows.append((gate["name"], f"{word}  {value} {gate['op']} {gate['threshold']}"))
    version = summary.get("registered_version")
    registered = (
        f"{summary.get('model_name')} v{version} (alias challenger)"
        if version
        else "not registered: " + summary.get("gate_summary", "a gate failed")
    )
    rows += [
        ("registered", registered),
        ("model card", str(summary.get("model_card_html"))),
        ("step logs", str(summary.get("log"))),
    ]
    return rows


def print_summary(summary: dict[str, Any], out: Any = None) -> None:
    """Render a training run summary: data version, best params, headline metrics, gates, registry, card.

    On a terminal it is a table; anywhere else (a pipe, a file, CI logs) plain ``label: text`` lines, never
    cut at 80 columns and without escape codes.

    Args:
        summary: The run summary.
        out: Where plain lines go when stdout is not a terminal (default ``sys.stdout``).
    """
    if not console.is_terminal:
        stream = out or sys.stdout
        width = max(len(label) for label, _ in _plain_summary(summary))
        print("training run", file=stream)
        for label, text in _plain_summary(summary):
            print(f"  {label:<{width}}  {text}", file=stream)
        stream.flush()
        return
    metrics = summary.get("metrics", {})
    table = Table(title="training run", show_header=False)
    table.add_row("data version", str(summary.get("data_version")))
    params = {
        k: round(v, 4) if isinstance(v, float) else v for k, v in summary.get("best_params", {}).items()
    }
    table.add_row("best params", json.dumps(params, sort_keys=True))
    table.add_row("metrics", "  ".join(f"{k}={metrics[k]:.4f}" for k in _HEADLINE_METRICS if k in metrics))
    for gate in summary.get("gates", []):
        status = gate.get("status") or ("pass" if gate["passed"] else "fail")
        mark = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]"}.get(
            status, f"[yellow]{status.replace('_', ' ')}[/]"
        )
        # not applicable / not assessed: nothing was measured, the word says so (never "pass n/a")
        value = f"{gate['value']:.4f}" if status in ("pass", "fail") else ""
        table.add_row(gate["name"], f"{mark}  {value} {gate['op']} {gate['threshold']}")
    for model, row in summary.get("comparison", {}).items():  # tuned model vs baselines, same test frame
        cells = "  ".join(
            f"{k}={row[k]:.4f}" for k in ("auc", "gini", "ks", "brier") if row.get(k) is not None
        )
        cv = (
            f"cv_auc={row.get('cv_auc_mean') or float('nan'):.4f}+-{row.get('cv_auc_sd') or float('nan'):.4f}"
        )
        table.add_row(model, f"{cells}  {cv}")
    version = summary.get("registered_version")
    registered = (
        f"{summary.get('model_name')} v{version} (alias challenger)"
        if version
        else ("[red]not registered[/]: " + escape(summary.get("gate_summary", "a gate failed")))
    )
    table.add_row("registered", registered)
    notes = summary.get("gate_summary", "").splitlines()[1:]  # what was not assessed / not applicable
    if version and notes:
        table.add_row("gate notes", escape("\n".join(notes)))
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


def cmd_stream(args: argparse.Namespace) -> int:
    """Consume the event stream into the online and offline feature stores (blocks until SIGTERM/SIGINT)."""
    import asyncio
    import signal

    from feast_repo.stream import run

    settings = _settings(args)
    stopping = {"now": False}

    def stop(*_: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def progress(outcome: Any, messages: Any) -> None:
        if args.verbose:
            o = outcome
            console.print(
                f"batch: {o.events} events, {o.applied} applied, {o.duplicates} redelivered, "
                f"{o.expired} expired, {o.dead_lettered} dead-lettered, {o.applicants} applicants"
            )

    stats = asyncio.run(
        run(
            settings,
            stop_when_idle=args.until_idle,
            on_batch=progress,
            should_stop=lambda: stopping["now"],
        )
    )
    console.print(
        f"{stats.events:,} events in {stats.seconds:.1f} s: {stats.applied:,} applied, "
        f"{stats.duplicates:,} redelivered, {stats.expired:,} expired, {stats.dead_lettered:,} dead-lettered "
        f"({settings.streaming.stream}_dlq), {stats.applicants:,} applicant updates"
    )
    return 0


def cmd_stream_replay(args: argparse.Namespace) -> int:
    """Publish a synthetic stream of new transactions for the world's applicants."""
    import asyncio

    import numpy as np
    import pandas as pd

    from creditops.streaming.broker import NatsBroker
    from creditops.streaming.events import encode_transactions
    from creditops.streaming.replay import StreamDrift, synthetic_transactions

    settings = _settings(args)
    cfg = settings.streaming
    ids = (
        np.array(args.applicant, dtype=np.int64) if args.applicant else np.arange(settings.data.n_applicants)
    )
    start = pd.Timestamp(args.start) if args.start else pd.Timestamp.now(tz="UTC").floor("s")
    frame = synthetic_transactions(
        ids,
        args.events,
        start,
        rate=args.rate,
        first_transaction_id=args.first_id,
        seed=args.seed,
        drift=StreamDrift() if args.drift else None,
    )

    async def publish() -> None:
        broker = await NatsBroker(cfg.url, cfg.stream, cfg.durable).connect()
        try:
            await broker.publish(encode_transactions(frame))
        finally:
            await broker.close()

    asyncio.run(publish())
    console.print(f"published {len(frame):,} transaction events to {cfg.stream}.events.transaction")
    return 0


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
        p.add_argument(
            "--workdir", type=Path, help="work directory (snapshots, runs, models; default .creditops)"
        )
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
    stream = sub.add_parser("stream", help="consume the event stream into the feature stores")
    stream.set_defaults(func=cmd_stream, until_idle=False, verbose=False)
    stream.add_argument("--until-idle", action="store_true", help="stop once the stream has no new events")
    stream.add_argument("--verbose", action="store_true", help="print one line per batch")
    stream_sub = stream.add_subparsers(dest="stream_command")
    p = stream_sub.add_parser("replay", help="publish a synthetic stream of new transactions")
    p.add_argument("--events", type=int, default=1000, help="number of transaction events")
    p.add_argument("--rate", type=float, default=1000.0, help="events per second of event time")
    p.add_argument("--applicant", type=int, action="append", help="only these applicant ids (repeatable)")
    p.add_argument("--start", help="event time of the first event (default: now)")
    p.add_argument("--first-id", type=int, default=10**12, help="first transaction id")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--drift", action="store_true", help="inject financial stress (late payments, overdrafts)")
    p.set_defaults(func=cmd_stream_replay)
    audit = sub.add_parser("audit", help="audit log operations")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    p = audit_sub.add_parser("verify", help="verify the hash chains of the audit log")
    p.add_argument("--url", help="audit log URL (default: from config)")
    p.set_defaults(func=cmd_audit_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: user errors print one clear line and exit 2, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CreditOpsError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
