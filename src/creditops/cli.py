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

from creditops import __version__
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
    settings = load_config(args.config, overrides).resolved()
    if hasattr(args, "source"):  # the commands that read data
        _check_spec(settings)
    return settings


def _check_spec(settings: Settings) -> None:
    """A spec-sourced run needs a readable spec: say so before any pipeline starts."""
    if settings.data.source != "spec":
        return
    if settings.data.spec_path is None:
        raise CreditOpsError(
            "--source spec needs --spec <dataset spec YAML> (or data.spec_path in the config)"
        )
    if not Path(settings.data.spec_path).is_file():
        raise CreditOpsError(f"dataset spec not found: {settings.data.spec_path}")


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
    _plain_kfp_logs()
    if console.is_terminal:
        console.rule("training pipeline (KFP local runner)")
    else:
        print("training pipeline (KFP local runner)", flush=True)
    summary = run_training(settings)
    print_summary(summary)
    return summary


def cmd_retrain(args: argparse.Namespace) -> int:
    """Run the KFP retraining pipeline locally; a passing model becomes the ``challenger``, never champion."""
    summary = _retrain(_settings(args), args.reason, args.window_months)
    return 0 if summary.get("registered_version") else 1


def _retrain(settings: Settings, reason: str, window_months: int = 12) -> dict[str, Any]:
    from pipelines.local import run_retraining

    if not reason.strip():
        raise CreditOpsError("--reason must say why the model is retrained (it is recorded on the version)")
    if window_months < 1:
        raise CreditOpsError(f"--window-months must be at least 1, got {window_months}")
    preflight(settings)
    _plain_kfp_logs()
    print(f"retraining pipeline (KFP local runner): {reason}", flush=True)
    summary = run_retraining(settings, reason, window_months)
    print_summary(summary)
    champion = summary.get("champion_version") or "none"
    console.print(f"trigger: {escape(summary['trigger_reason'])}; champion: {champion}", soft_wrap=True)
    if summary.get("handoff"):
        console.print(f"next: {summary['handoff']['command']}", soft_wrap=True)
    return summary


def _plain_kfp_logs() -> None:
    """KFP's local runner colours its log lines unconditionally; keep escape codes out of files and pipes."""
    if sys.stdout.isatty():
        return
    from kfp.local import logging_utils

    for name in ("CYAN", "GREEN", "RED", "MAGENTA", "RESET"):
        setattr(logging_utils.Color, name, "")


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


def comparison_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The tuned model beside its baselines (same test frame, same CV folds): a (model, figures) row each."""
    rows = []
    for model, row in summary.get("comparison", {}).items():
        cells = "  ".join(
            f"{k}={row[k]:.4f}" for k in ("auc", "gini", "ks", "brier") if row.get(k) is not None
        )
        mean, sd = (
            row.get(k) if row.get(k) is not None else float("nan") for k in ("cv_auc_mean", "cv_auc_sd")
        )
        cv = f"cv_auc={mean:.4f}+-{sd:.4f}"
        trees = f"  trees={int(row['n_trees'])}" if row.get("n_trees") else ""
        rows.append((model, f"{cells}  {cv}{trees}"))
    return rows


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
        unmeasured = gate["value"] is None or gate["value"] != gate["value"]  # None, or NaN from RunSummary
        value = "n/a" if unmeasured else f"{gate['value']:.4f}"
        rows.append((gate["name"], f"{word}  {value} {gate['op']} {gate['threshold']}"))
    rows += comparison_rows(summary)
    version = summary.get("registered_version")
    registered = (
        f"{summary.get('model_name')} v{version} (alias challenger)"
        if version
        else "not registered: " + summary.get("gate_summary", "a gate failed")
    )
    notes = summary.get("gate_summary", "").splitlines()[1:]  # what was not assessed / not applicable
    rows += [("registered", registered), *([("gate notes", "; ".join(notes))] if version and notes else [])]
    rows += [
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
        word = gate.get("status") or ("pass" if gate["passed"] else "FAIL")
        colour = {"pass": "green", "FAIL": "red", "fail": "red"}.get(word, "yellow")  # nosec B105  # a Rich colour
        mark = f"[{colour}]{word}[/]"
        value = "n/a" if gate["value"] is None or gate["value"] != gate["value"] else f"{gate['value']:.4f}"
        table.add_row(gate["name"], f"{mark}  {value} {gate['op']} {gate['threshold']}")
    for model, text in comparison_rows(summary):
        table.add_row(model, text)
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
    from pipelines import daily, retraining, training

    for module in (training, retraining, daily):
        console.print(f"wrote {module.compile_pipeline()}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Batch-score a CSV/Parquet file with reason codes; every decision is audited."""
    from creditops.artifact import load_bundle
    from creditops.batch import score_file
    from creditops.governance.audit import AuditLog
    from creditops.governance.registry import resolve

    settings = _settings(args)
    bundle = load_bundle(resolve(settings.mlflow.tracking_uri, args.model))
    if args.what_if:
        # A what-if run makes no decisions (nothing is acted on), so it is not audited, and says so.
        console.print(
            "[yellow]what-if run: NOT audited; its outputs are not decisions and must not be used[/]"
        )
        audit = None
    else:
        audit = AuditLog.open(settings.audit.url, anchor_path=settings.audit.anchor_path)
    result = score_file(bundle, args.input, args.output, audit=audit, caller_id=args.caller_id)
    audited = "not audited (what-if)" if args.what_if else f"audited {result.audited:,}"
    console.print(
        f"scored {result.rows_scored:,} of {result.rows_in:,} rows in {result.seconds:.1f} s "
        f"({result.rows_per_minute:,.0f} rows/min) -> {result.output_path}; decisions {result.decisions}; "
        f"{audited}"
    )
    if result.rows_quarantined:
        console.print(f"[yellow]{result.rows_quarantined:,} rows quarantined[/] -> {result.quarantine_path}")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Recompute the audit hash chains and check them against the anchor; exit 1 if anything is wrong."""
    from creditops.governance.audit import AuditLog

    settings = _settings(args)
    url = args.url or settings.audit.url
    anchor = args.anchor if args.anchor is not None else settings.audit.anchor_path
    if anchor and not Path(anchor).exists() and args.anchor is not None:
        raise CreditOpsError(f"anchor file not found: {anchor}")
    with AuditLog.open(url, create=False) as log:
        report = log.verify(anchor_path=anchor or None)
    console.print(report.summary(), markup=False, highlight=False, soft_wrap=True)
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

    return serve_command(_settings(args), args.model, args.port, args.workers)


def cmd_demo(args: argparse.Namespace) -> int:
    """Train, register, serve, score a few applicants over HTTP, verify the audit chain."""
    from creditops.serve_local import demo_serving

    settings = _settings(args)
    summary = _train(settings)
    if not summary.get("registered_version"):
        console.print("[red]no model registered: a validation gate failed; see the summary above[/]")
        return 1
    code = demo_serving(settings, summary, console)
    if code == 0:
        from feast_repo.stream import demo_stream

        code = demo_stream(settings, summary, console)
    if code == 0:
        code = demo_rollout(settings, summary)
    if code == 0:
        code = demo_monitoring(settings)
    return code


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


def cmd_schedule(args: argparse.Namespace) -> int:
    """Run the daily pipeline and monthly retraining on the configured cron expressions (until SIGTERM)."""
    import signal

    from creditops.schedule import Cron, Job, Scheduler

    settings = _settings(args)
    cfg = settings.schedule
    stopping = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stopping.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stopping.update(now=True))

    def daily() -> None:
        from pipelines.daily import run_daily

        console.rule("daily pipeline (KFP local runner)")
        decision = run_daily(
            settings, on_retrain=lambda d: _retrain(settings, "daily monitoring: " + "; ".join(d["reasons"]))
        )
        console.print(f"retrain: {decision['retrain']} {'; '.join(decision['reasons'])}")

    jobs = [
        Job("daily", Cron.parse(cfg.daily_cron), daily),
        Job("retrain", Cron.parse(cfg.retrain_cron), lambda: _retrain(settings, "monthly schedule")),
    ]
    sched = Scheduler(jobs, max_concurrency=cfg.max_concurrency)
    for job in jobs:
        console.print(f"{job.name}: '{job.cron.expression}' next at {job.next_due:%Y-%m-%d %H:%M} UTC")
    if args.once:
        return 0
    import time

    sched.run_until(lambda: stopping["now"], time.sleep)
    return 0


def _feature_tables(settings: Settings) -> dict[str, Any] | None:
    """The offline feature tables of the configured store (None when it holds none yet)."""
    import pandas as pd

    from creditops.features.registry import GROUPS
    from feast_repo.definitions import parquet_path

    data_dir = settings.feast.data_dir
    paths = {g: parquet_path(data_dir, g) for g in GROUPS}
    if settings.feast.offline_store != "file" or not all(p.exists() for p in paths.values()):
        return None
    return {g: pd.read_parquet(p) for g, p in paths.items()}


def _models_by_feature(settings: Settings) -> dict[str, list[str]] | None:
    """Feature -> registered model versions using it, or None when the MLflow registry is not readable."""
    try:
        from mlflow.tracking import MlflowClient

        from creditops.artifact import read_manifest
        from creditops.features.catalog import models_by_feature
        from creditops.governance.registry import resolve, tracking_uri_for

        uri = tracking_uri_for(settings.mlflow.tracking_uri)
        name = settings.mlflow.model_name
        pairs = []
        for v in MlflowClient(uri).search_model_versions(f"name='{name}'"):
            bundle = resolve(uri, f"models:/{name}/{v.version}")
            pairs.append((f"{name} v{v.version}", read_manifest(bundle).features))
        return models_by_feature(pairs)
    except Exception:  # noqa: BLE001 - no server, no registry, no model: the catalog says "unknown"
        return None


def _catalog(args: argparse.Namespace) -> list[Any]:
    from creditops.features.catalog import catalog_entries

    settings = _settings(args)
    return catalog_entries(_feature_tables(settings), None, _models_by_feature(settings))


def cmd_features_list(args: argparse.Namespace) -> int:
    """List the model features (name, group, dtype, direction, content hash, description)."""
    from creditops.features.registry import FEATURES
    from creditops.features.versioning import feature_hashes

    hashes = feature_hashes([f.name for f in FEATURES])
    width = max(len(f.name) for f in FEATURES)
    for f in FEATURES:  # plain lines: greppable, never wrapped to the terminal width
        head = f"{f.name:<{width}}  {f.group:<11}  {f.dtype:<5}  {f.direction:+d}"
        print(f"{head}  {hashes[f.name]}  {f.description}")
    return 0


def cmd_features_describe(args: argparse.Namespace) -> int:
    """Describe one feature."""
    from creditops.features.catalog import describe
    from creditops.features.registry import get_feature

    try:
        get_feature(args.name)
    except KeyError:
        console.print(f"[red]error:[/] unknown feature {args.name!r} (see `creditops features list`)")
        return 2
    (entry,) = [e for e in _catalog(args) if e.name == args.name]
    print(describe(entry))
    return 0


def cmd_features_catalog(args: argparse.Namespace) -> int:
    """Write the HTML feature catalog (index + one page per feature)."""
    from creditops.features.catalog import write_catalog

    paths = write_catalog(_catalog(args), args.out)
    console.print(f"wrote {len(paths)} pages to {args.out} ({paths[0]})")
    return 0


def cmd_features_health(args: argparse.Namespace) -> int:
    """Check feature health of the configured store; write the report and the Prometheus text."""
    from prometheus_client import write_to_textfile

    from creditops.features.health import health_gauges, health_markdown
    from feast_repo.health import check_health
    from feast_repo.store import open_store

    settings = _settings(args)
    store = open_store(config=settings.feast)
    health = check_health(store, sample=args.sample, audit_url=settings.audit.url)
    out = settings.workdir / "reports"
    out.mkdir(parents=True, exist_ok=True)
    (out / "feature-health.md").write_text(health_markdown(health))
    write_to_textfile(str(out / "feature-health.prom"), health_gauges(health))
    print(health_markdown(health))
    console.print(f"wrote {out / 'feature-health.md'} and {out / 'feature-health.prom'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one sub-command per platform action)."""
    parser = argparse.ArgumentParser(
        prog="creditops",
        description="Credit-scoring MLOps platform: train, gate, register, serve and audit credit models.",
        epilog="Run 'creditops <command> --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"creditops {__version__}")
    parser.add_argument("--config", type=Path, help="YAML config (default: embedded defaults)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_[0].upper() + help_[1:] + ".")
        p.set_defaults(func=func)
        return p

    for name, func, help_ in (
        ("demo", cmd_demo, "end to end on the embedded defaults: train, register, serve, score, audit"),
        ("train", cmd_train, "run the KFP training pipeline locally"),
        ("retrain", cmd_retrain, "run the KFP retraining pipeline locally (new model becomes challenger)"),
        ("ingest", cmd_ingest, "ingest a source into a content-addressed snapshot"),
    ):
        p = add(name, func, help_)
        p.add_argument(
            "--source",
            choices=["synthetic", "german_credit", "hmda", "spec"],
            help="where the data comes from (default: from config, synthetic)",
        )
        p.add_argument("--spec", type=Path, help="dataset spec YAML (with --source spec)")
        p.add_argument("--applicants", type=int, help="synthetic applicants to generate")
        p.add_argument(
            "--workdir", type=Path, help="work directory (snapshots, runs, models; default .creditops)"
        )
        if name != "ingest":
            p.add_argument("--trials", type=int, help="Optuna trials")
        if name == "retrain":
            p.add_argument("--reason", required=True, help="why retrain (recorded on the run and version)")
            p.add_argument(
                "--window-months", type=int, default=12, help="train on the last N months of data (12)"
            )
    add("compile", cmd_compile, "compile the pipelines to KFP YAML")
    p = add("score", cmd_score, "batch-score a file with reason codes (every decision is audited)")
    p.add_argument("--input", type=Path, required=True, help="CSV or Parquet file of applications")
    p.add_argument("--output", type=Path, required=True, help="Parquet file of decisions to write")
    p.add_argument("--model", default="models:/credit-pd@challenger", help="bundle dir or models:/name@alias")
    p.add_argument("--caller-id", default="batch", help="who ran the batch (recorded in the audit log)")
    p.add_argument(
        "--what-if",
        action="store_true",
        help="simulation only: outputs are not decisions, so nothing is audited (never act on them)",
    )
    p = add("serve", cmd_serve, "serve a model with the local KServe model server")
    p.add_argument("--model", default="models:/credit-pd@challenger", help="bundle dir or models:/name@alias")
    p.add_argument("--port", type=int, help="HTTP port (default: serving.port from config)")
    p.add_argument("--workers", type=int, help="server processes (default: serving.workers from config)")
    p = add("promote", cmd_promote, "move the champion alias to a model version")
    p.add_argument("--version", required=True, help="registered model version to promote")
    stream = sub.add_parser(
        "stream",
        help="consume the event stream into the feature stores",
        description="Consume the event stream (NATS JetStream) into the online and offline feature stores: "
        "validate, dead-letter, update the per-applicant state, recompute and write the features.",
    )
    stream.set_defaults(func=cmd_stream, until_idle=False, verbose=False)
    stream.add_argument("--until-idle", action="store_true", help="stop once the stream has no new events")
    stream.add_argument("--verbose", action="store_true", help="print one line per batch")
    stream_sub = stream.add_subparsers(dest="stream_command", metavar="{replay}")
    p = stream_sub.add_parser(
        "replay",
        help="publish a synthetic stream of new transactions",
        description="Publish a synthetic stream of new transactions for the world's applicants.",
    )
    p.add_argument("--events", type=int, default=1000, help="number of transaction events")
    p.add_argument("--rate", type=float, default=1000.0, help="events per second of event time")
    p.add_argument("--applicant", type=int, action="append", help="only these applicant ids (repeatable)")
    p.add_argument("--start", help="event time of the first event (default: now)")
    p.add_argument("--first-id", type=int, default=10**12, help="first transaction id")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--drift", action="store_true", help="inject financial stress (late payments, overdrafts)")
    p.set_defaults(func=cmd_stream_replay)
    audit = sub.add_parser("audit", help="audit log operations", description="Audit log operations.")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="{verify}")
    p = audit_sub.add_parser(
        "verify",
        help="prove the audit log is complete: hash chains and anchored chain heads",
        description="Recompute every hash chain and check it against the anchor file; exit 0 when the log "
        "is complete and unaltered, 1 when anything is missing or altered, 2 when there is no log.",
    )
    p.add_argument("--url", help="audit log URL (default: audit.url from config)")
    p.add_argument("--anchor", help="anchor file of chain heads (default: audit.anchor_path from config)")
    p.set_defaults(func=cmd_audit_verify)
    p = add("schedule", cmd_schedule, "run the daily pipeline and monthly retraining on their cron schedules")
    p.add_argument("--once", action="store_true", help="print the next run times and exit")
    features = sub.add_parser("features", help="feature catalog and health")
    features_sub = features.add_subparsers(dest="features_command", required=True)
    p = features_sub.add_parser("list", help="list the model features")
    p.set_defaults(func=cmd_features_list)
    p = features_sub.add_parser("describe", help="describe one feature")
    p.add_argument("name")
    p.set_defaults(func=cmd_features_describe)
    p = features_sub.add_parser("catalog", help="write the HTML feature catalog")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.set_defaults(func=cmd_features_catalog)
    p = features_sub.add_parser("health", help="feature health of the configured store")
    p.add_argument("--sample", type=int, default=500, help="entities sampled from the online store")
    p.set_defaults(func=cmd_features_health)
    add_deploy_commands(sub)
    add_monitoring_commands(sub)
    return parser


# --------------------------------------------------------------------------------------------------------
# deploy / rollout (creditops.deploy)


def demo_rollout(settings: Settings, summary: dict[str, Any]) -> int:
    """The demo's last step: canary the new model over a live stream of applicants scored by id."""
    import time

    from creditops.config import CanaryConfig
    from creditops.deploy.commands import canary_local, history_of, stage
    from creditops.deploy.release import approve, promote_to_champion
    from creditops.governance.registry import CHAMPION, alias_version
    from creditops.serve_local import recent_applicant_ids

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
    ids = recent_applicant_ids(summary)
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

    return print_history(_settings(args), console, args.at, args.env, args.limit)


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


def _kube_api(args: argparse.Namespace) -> Any:
    from creditops.deploy.kube_commands import custom_objects_api

    return custom_objects_api(args.kubeconfig, args.context)


def cmd_rollout_kube_status(args: argparse.Namespace) -> int:
    """Print the InferenceService's traffic, revisions and readiness as JSON (``--require-idle``: exit 1)."""
    from creditops.deploy.kube_commands import MODES, api_errors, idle_problems, status_document
    from creditops.deploy.kubernetes import KServeTarget

    def read() -> tuple[dict[str, Any], list[str]]:
        mode = MODES[args.mode] if args.mode else None
        target = KServeTarget(_kube_api(args), args.namespace, args.isvc, "", mode=mode)
        doc = status_document(target)
        return doc, idle_problems(target, doc) if args.require_idle else []

    doc, problems = api_errors(args.namespace, args.isvc, read)
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    if problems:
        sys.stderr.write("not idle: " + "; ".join(problems) + "\n")
        return 1
    return 0


def cmd_rollout_kube_action(args: argparse.Namespace) -> int:
    """Start, step, promote or roll back the canary of a KServe InferenceService; record it in the history."""
    from creditops.deploy.commands import history_of
    from creditops.deploy.kube_commands import kube_action

    settings = _settings(args)
    doc = kube_action(
        args.kube_command,
        api=_kube_api(args),
        history=history_of(settings),
        model_name=settings.mlflow.model_name,
        environment=args.env,
        namespace=args.namespace,
        name=args.isvc,
        mode=args.mode,
        storage_uri=getattr(args, "storage_uri", "") or "",
        percent=getattr(args, "percent", None),
        version=args.version,
        actor=args.by,
        reason=args.reason,
        timeout_s=args.timeout,
    )
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    return 0


def cmd_rollout_kube_run(args: argparse.Namespace) -> int:
    """Canary a version on a KServe InferenceService with automatic analysis (exit 1 if rolled back)."""
    from creditops.deploy.commands import history_of, print_report
    from creditops.deploy.controller import StepReport
    from creditops.deploy.kube_commands import kube_run

    settings = _settings(args)
    cfg = settings.deploy.canary
    started: list[float] = []

    def show(r: StepReport) -> None:
        if not started:
            started.append(r.at - cfg.check_every_s)
        print_report(console, r, started[0])

    result = kube_run(
        api=_kube_api(args),
        history=history_of(settings),
        model_name=settings.mlflow.model_name,
        environment=args.env,
        namespace=args.namespace,
        name=args.isvc,
        version=str(args.version),
        storage_uri=args.storage_uri,
        audit_url=args.audit_url or settings.audit.url,
        cfg=cfg,
        champion_version=args.champion_version,
        canary_label=args.canary_label,
        champion_label=args.champion_label,
        prometheus_url=args.prometheus_url,
        mode=args.mode,
        auto_promote=settings.deploy.auto_promote,
        actor=args.by,
        reason=args.reason,
        timeout_s=args.timeout,
        approval_timeout_s=args.approval_timeout,
        on_report=show,
    )
    if result.outcome == "promoted":
        console.print(f"[green]v{args.version} promoted[/] on {args.namespace}/{args.isvc}: {result.reason}")
        return 0
    console.print(f"[red]v{args.version} rolled back[/] on {args.namespace}/{args.isvc}: {result.reason}")
    return 1


def cmd_deploy_smoke(args: argparse.Namespace) -> int:
    """Smoke-test a live endpoint: ready, a valid contract row scores with a decision, a bad row is a 4xx."""
    from creditops.deploy.commands import history_of
    from creditops.deploy.kube_commands import api_errors, custom_objects_api
    from creditops.deploy.kubernetes import KServeTarget
    from creditops.deploy.release import actor_name, contract_rows, smoke_test
    from creditops.features.contract import builtin_contract

    settings = _settings(args)
    url = args.url
    if not url:
        if not (args.namespace and args.isvc):
            raise CreditOpsError("deploy smoke needs --url, or --namespace and --isvc to read status.url")
        api = custom_objects_api(args.kubeconfig, args.context)
        obj = api_errors(
            args.namespace, args.isvc, lambda: KServeTarget(api, args.namespace, args.isvc, "").get()
        )
        url = (obj.get("status") or {}).get("url")
        if not url:
            raise CreditOpsError(f"InferenceService {args.namespace}/{args.isvc} has no status.url yet")
    model = args.model_name or settings.serving.model_name
    import httpx

    try:
        report = smoke_test(url, model, contract_rows(builtin_contract()), timeout_s=args.timeout)
    except (httpx.HTTPError, ValueError) as exc:
        raise CreditOpsError(f"smoke test of {url}: {type(exc).__name__}: {exc}") from None
    for check, ok in report.checks.items():
        console.print(f"smoke {check}: {'[green]pass[/]' if ok else '[red]FAIL[/]'} ({report.detail[check]})")
    if args.env:
        event = "smoke_passed" if report.ok else "smoke_failed"
        history_of(settings).record(
            args.env, settings.mlflow.model_name, args.version or "endpoint", event, actor=actor_name(),
            details={"url": url, **report.detail},
        )  # fmt: skip
    return 0 if report.ok else 1


def _kube_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--namespace", required=True, help="namespace of the InferenceService")
    p.add_argument("--isvc", required=True, help="InferenceService name")
    p.add_argument(
        "--mode",
        choices=["serverless", "standard"],
        help="KServe mode (default: the deploymentMode annotation)",
    )
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    p.add_argument("--context", help="kubeconfig context (default: the current one)")


def add_kube_commands(rollout_sub: Any) -> None:
    """``rollout kube status|start|step|promote|rollback`` (one move per call) and ``run`` (judged canary)."""
    kube = rollout_sub.add_parser("kube", help="canary on a KServe InferenceService, one move per call")
    kube_sub = kube.add_subparsers(dest="kube_command", required=True)
    p = kube_sub.add_parser("status", help="traffic, revisions and readiness as JSON")
    _kube_options(p)
    p.add_argument(
        "--require-idle", action="store_true", help="exit 1 unless settled with no canary in flight"
    )
    p.set_defaults(func=cmd_rollout_kube_status)
    for name, help_ in (
        ("start", "deploy the challenger as a canary at --percent (refused on an unsettled service)"),
        ("step", "move the canary in progress to --percent"),
        ("promote", "make the canary the champion (100 %%)"),
        ("rollback", "send all traffic back to the champion"),
    ):
        p = kube_sub.add_parser(name, help=help_)
        _kube_options(p)
        if name == "start":
            p.add_argument("--storage-uri", required=True, help="storageUri of the challenger's model")
        if name in ("start", "step"):
            p.add_argument("--percent", type=int, required=True, help="canary traffic percent (1..99)")
        p.add_argument(
            "--env", choices=["dev", "staging", "prod"], default="prod", help="history environment"
        )
        p.add_argument("--version", help="model version for the history (default: the storage URI)")
        p.add_argument("--by", help="who acts (default: $CREDITOPS_ACTOR or the OS user)")
        p.add_argument("--reason", default="", help="why (kept in the deployment history)")
        p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the controller")
        p.set_defaults(func=cmd_rollout_kube_action)
    p = kube_sub.add_parser(
        "run", help="the whole canary with automatic analysis (audit log + Prometheus); exit 1 if rolled back"
    )
    _kube_options(p)
    p.add_argument("--version", required=True, help="registered model version to roll out")
    p.add_argument("--storage-uri", required=True, help="storageUri of that version's model")
    p.add_argument(
        "--champion-version", help="the version serving now (default: the deployment history's for --env)"
    )
    p.add_argument("--audit-url", help="audit log the predictors write (default: audit.url)")
    for arm in ("canary", "champion"):
        p.add_argument(
            f"--{arm}-label",
            help=f"the {arm}'s model_version in the audit log (default: <model_name>@<version>)",
        )
    p.add_argument(
        "--prometheus-url", help="Prometheus base URL for error rate and latency (without: inconclusive)"
    )
    p.add_argument("--env", choices=["dev", "staging", "prod"], default="prod", help="history environment")
    p.add_argument("--by", help="who acts (default: $CREDITOPS_ACTOR or the OS user)")
    p.add_argument("--reason", default="", help="why (kept in the deployment history)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the controller per move")
    p.add_argument(
        "--approval-timeout", type=float, default=3600.0, help="seconds to wait for an approval at the end"
    )
    p.set_defaults(func=cmd_rollout_kube_run)


def add_deploy_commands(sub: Any) -> None:
    """The ``deploy`` and ``rollout`` command groups."""
    deploy = sub.add_parser("deploy", help="environments, approvals, promotion and the deployment history")
    deploy_sub = deploy.add_subparsers(dest="deploy_command", required=True)
    p = deploy_sub.add_parser("stage", help="serve a version on staging and run the smoke tests")
    p.add_argument("--version", required=True, help="registered model version")
    p.set_defaults(func=cmd_deploy_stage)
    p = deploy_sub.add_parser("approve", help="record who approves promoting a version, and why")
    p.add_argument("--version", required=True, help="registered model version")
    p.add_argument("--by", required=True, help="who approves")
    p.add_argument("--reason", required=True, help="why")
    p.set_defaults(func=cmd_deploy_approve)
    p = deploy_sub.add_parser("promote", help="make an approved version the production champion")
    p.add_argument("--version", required=True, help="registered model version")
    p.set_defaults(func=cmd_deploy_promote)
    p = deploy_sub.add_parser("history", help="deployment history; --at DATE: who served prod then")
    p.add_argument("--at", help="date or ISO time (UTC)")
    p.add_argument(
        "--env", choices=["dev", "staging", "prod", "training"], help="only this environment (training: "
        "the retraining trigger's decisions and runs)",
    )  # fmt: skip
    p.add_argument("--limit", type=int, help="only the last N events")
    p.set_defaults(func=cmd_deploy_history)
    p = deploy_sub.add_parser("smoke", help="smoke-test a live endpoint (valid row scores, bad row is a 4xx)")
    p.add_argument("--url", help="endpoint base URL (default: status.url of --namespace/--isvc)")
    p.add_argument("--namespace", help="namespace of the InferenceService")
    p.add_argument("--isvc", help="InferenceService name")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("--model-name", help="model name on the paths (default: serving.model_name)")
    p.add_argument("--env", choices=["dev", "staging", "prod"], help="record the outcome in this environment")
    p.add_argument("--version", help="model version for the history record")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request seconds")
    p.set_defaults(func=cmd_deploy_smoke)
    rollout = sub.add_parser("rollout", help="progressive delivery of a registered version")
    rollout_sub = rollout.add_subparsers(dest="rollout_command", required=True)
    p = rollout_sub.add_parser("canary", help="canary a version against the champion with automatic analysis")
    p.add_argument("--version", required=True, help="registered model version")
    p.set_defaults(func=cmd_rollout_canary)
    p = rollout_sub.add_parser(
        "shadow", help="mirror traffic to a version (audited as shadow, never returned)"
    )
    p.add_argument("--version", required=True, help="registered model version")
    p.add_argument("--duration", type=float, default=600.0, help="seconds")
    p.set_defaults(func=cmd_rollout_experiment)
    p = rollout_sub.add_parser("ab", help="A/B test a version against the champion (sticky by applicant id)")
    p.add_argument("--version", required=True, help="registered model version")
    p.add_argument("--duration", type=float, default=600.0, help="seconds")
    p.add_argument(
        "--split", type=int, help="percent of applicants on the new version (default deploy.ab_split)"
    )
    p.set_defaults(func=cmd_rollout_experiment)
    add_kube_commands(rollout_sub)


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


def _print_monitoring(run: Any) -> None:
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


def demo_monitoring(settings: Settings) -> int:
    """Last demo step: one monitoring run over the demo's audit log, its alerts and the HTML report."""
    from creditops.monitoring.alerts import evaluate_alerts
    from creditops.monitoring.app import monitor_once
    from creditops.monitoring.report import render_report

    console.rule("monitoring: every audited decision against its version's training reference")
    run = monitor_once(settings)
    _print_monitoring(run)
    alerts = [a for w in run.latest().values() for a in evaluate_alerts(w, settings.monitoring)]
    for a in alerts:
        console.print(f"alert [{a.severity}] {a.name}: {a.annotations.get('summary', '')}", markup=False)
    if not alerts:
        console.print("no alerts")
    path = render_report(run, settings.workdir / "reports" / "monitoring.html", config=settings.monitoring)
    console.print(f"monitoring report: {path}")
    _compliance(settings, run, owner="demo")
    return 0


def cmd_monitor_run(args: argparse.Namespace) -> int:
    """One monitoring run over the audit log: print the windows, send alerts, write JSON / HTML."""
    import logging

    from creditops.monitoring.alerts import evaluate_alerts

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    settings = _settings(args)
    run = _monitor_run(args)
    _print_monitoring(run)
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
    from creditops.monitoring.loop import LoopWorker

    settings = _settings(args)
    on_run = None
    if args.retrain:
        latest: list[Any] = []
        worker = LoopWorker(lambda: _loop_turn(settings, latest[-1], args))

        def on_run(run: Any) -> None:
            latest.append(run)
            del latest[:-1]
            worker.submit()

    service = MonitorService(
        lambda: _monitor_run(args), _dispatcher(settings), settings.monitoring, interval=args.interval,
        on_run=on_run,
    )  # fmt: skip
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
    import os
    import threading

    from creditops.monitoring.alerts import AlertReceiver
    from creditops.monitoring.loop import LoopWorker

    settings = _settings(args)
    token = args.token or os.environ.get("CREDITOPS_ALERT_TOKEN") or None
    if args.retrain and token is None:
        raise CreditOpsError(
            "--retrain starts retraining on what it receives: set a bearer token (--token or "
            "$CREDITOPS_ALERT_TOKEN) so only your Alertmanager can call it"
        )
    store = _received_alerts(settings, args.alerts_file)
    worker = None
    if args.retrain:
        worker = LoopWorker(lambda: _loop_turn(settings, _monitor_run(args), args))

    def show(alerts: list[Any]) -> None:
        store.append(alerts)
        for a in alerts:
            console.print(
                f"{a.status} [{a.severity}] {a.name} {dict(a.labels)}: {a.annotations.get('summary', '')}",
                markup=False,
            )
        if worker is not None and any(a.status == "firing" for a in alerts):
            worker.submit()

    receiver = AlertReceiver(show, settings.monitoring.host, args.port, token=token)
    console.print(f"receiving alerts on {receiver.url}")
    with receiver:
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


def _received_alerts(settings: Settings, path: Path | None = None) -> Any:
    from creditops.monitoring.loop import ReceivedAlerts

    return ReceivedAlerts(path or settings.workdir / "monitoring" / "received-alerts.jsonl")


def _loop_turn(settings: Settings, run: Any, args: argparse.Namespace) -> Any:
    """One turn of the closed loop on ``run``: decide and record; with --execute retrain and canary."""
    from creditops.deploy.commands import canary_local
    from creditops.monitoring.loop import close_loop

    received = _received_alerts(settings, getattr(args, "alerts_file", None)).read()
    execute = bool(getattr(args, "execute", False) or getattr(args, "retrain", False))

    def retrain(s: Settings, reason: str) -> dict[str, Any]:
        return _retrain(s, reason, getattr(args, "window_months", 12))

    def canary(s: Settings, version: str) -> Any:
        return canary_local(s, version, console)

    result = close_loop(
        settings, run, received=received, retrain=retrain if execute else None,
        canary=None if getattr(args, "no_canary", False) else canary,
    )  # fmt: skip
    d = result.decision
    verdict = "[bold red]retrain[/]" if d.retrain else "[green]no retraining[/]"
    console.print(f"trigger on {result.inputs.model_version or 'no served version'}: {verdict}")
    for r in d.reasons:
        console.print(f"  reason: {escape(r)}", soft_wrap=True)
    for b in d.blockers:
        console.print(f"  blocked: {escape(b)}", soft_wrap=True)
    if d.retrain and not execute:
        console.print("  dry run: nothing started (--execute runs the retraining pipeline)")
    if d.retrain and d.promotion_requires_approval and result.rollout is not None:
        console.print("  promotion waited for a recorded approval (creditops deploy approve)")
    return result


def cmd_monitor_trigger(args: argparse.Namespace) -> int:
    """One monitoring run, then the retraining trigger policy; --execute retrains and canaries."""
    settings = _settings(args)
    run = _monitor_run(args)
    _print_monitoring(run)
    result = _loop_turn(settings, run, args)
    if result.retraining is not None and not result.retraining.get("registered_version"):
        return 1
    if result.rollout is not None and result.rollout.outcome != "promoted":
        return 1
    return 0


def cmd_compliance(args: argparse.Namespace) -> int:
    """The compliance report (HTML): inventory, gates, approvals, adverse-action and audit coverage, drift."""
    from creditops.deploy.release import actor_name
    from creditops.monitoring.app import monitor_once

    settings = _settings(args)
    run = monitor_once(settings, args.reference or (), applications=args.applications)
    facts = _compliance(settings, run, args.owner or actor_name(), args.output)
    return 1 if facts.findings and args.fail_on_findings else 0


def _compliance(settings: Settings, run: Any, owner: str, output: Path | None = None) -> Any:
    from creditops.governance.compliance import gather, render_compliance

    facts = gather(settings, run, owner=owner)
    path = render_compliance(facts, output or settings.workdir / "reports" / "compliance.html")
    a = facts.audit
    console.print(
        f"{len(facts.inventory)} registered versions, {len(facts.gate_history)} judged candidates, "
        f"{a.get('records', 0):,} audit records (chains {'intact' if a.get('chains_ok') else 'BROKEN'}), "
        f"{len(facts.windows)} monitoring windows"
    )
    for finding in facts.findings:
        console.print(f"[red]finding:[/] {escape(finding)}", soft_wrap=True)
    if not facts.findings:
        console.print("[green]no findings[/]")
    console.print(f"compliance report: {path}")
    return facts


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
        ("trigger", cmd_monitor_trigger, "one run, then the retraining trigger policy (--execute acts)"),
        ("receive", cmd_monitor_receive, "Alertmanager-compatible webhook receiver (--retrain: act on it)"),
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
        elif name == "serve":
            p.add_argument("--interval", type=float, default=300.0, help="seconds between runs")
            p.add_argument("--port", type=int, help="metrics port (default: config monitoring.port)")
        elif name == "receive":
            p.add_argument("--port", type=int, default=9109, help="port")
            p.add_argument("--token", help="require this bearer token (default: $CREDITOPS_ALERT_TOKEN)")
        if name == "trigger":
            p.add_argument(
                "--execute", action="store_true",
                help="when the policy says retrain, run the retraining pipeline and canary its challenger "
                "(default: decide and record only)",
            )  # fmt: skip
        if name in ("serve", "receive"):
            p.add_argument(
                "--retrain", action="store_true",
                help="after each run / firing alert, apply the trigger policy and act on it",
            )  # fmt: skip
        if name != "run":
            p.add_argument("--alerts-file", type=Path, help="received-alerts file (default: in the workdir)")
            p.add_argument("--no-canary", action="store_true", help="stop at the registered challenger")
            p.add_argument("--window-months", type=int, default=12, help="retrain on the last N months (12)")
    p = sub.add_parser(
        "compliance", help="compliance report: inventory, gate history, approvals, adverse-action and audit "
        "coverage, drift and back-tests",
    )  # fmt: skip
    p.set_defaults(func=cmd_compliance)
    p.add_argument("--output", type=Path, help="HTML file (default: workdir/reports/compliance.html)")
    p.add_argument("--owner", help="model owner named in the inventory (default: $CREDITOPS_ACTOR / user)")
    p.add_argument("--reference", action="append", help="monitoring reference (as for monitor run)")
    p.add_argument("--applications", type=Path, help="application records with protected attributes")
    p.add_argument("--fail-on-findings", action="store_true", help="exit 1 when there is a finding")
    outcomes = sub.add_parser("outcomes", help="realised outcomes of served applicants")
    osub = outcomes.add_subparsers(dest="outcomes_command", required=True)
    p = osub.add_parser("generate", help="synthetic outcomes for audited decisions")
    p.set_defaults(func=cmd_outcomes_generate)
    p.add_argument("--output", type=Path, required=True, help="output")
    p.add_argument("--audit-url", help="audit url")
    p.add_argument("--seed", type=int, default=0, help="seed")
    p.add_argument("--horizon-days", type=int, default=365, help="horizon days")
    p.add_argument("--delay-days", type=int, default=30, help="delay days")
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
        # one line however long (no wrapping in logs), and the message is text, never rich markup
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
