"""Rollout benchmark on the local target: real predictors behind the router, a steady client load throughout.

Three bad challengers are canaried and must be rolled back automatically with 0 client-visible errors:
``errors`` (the good model behind ``router.faults --error-rate``), ``slow`` (the good model behind
``router.faults --delay-ms`` = 9 x the champion's measured median latency, i.e. 10x slower) and ``shifted``
(a bundle whose calibration adds ``--shift`` to every PD: PSI above threshold). For each: the time from its
first request to the rollback, the judge that fired, the client errors. Then a good challenger (another
XGBoost model trained on other data) goes registered -> staging (own endpoint + smoke tests) -> canary
10/25/50/100 % -> recorded approval -> champion; its wall time is reported.

Usage: ``.venv/bin/python bench/rollout.py [--interval 10] [--quick]``. Everything runs in a temp dir (audit
log and deployment history on SQLite). The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "kserve"))

from creditops.config import CanaryConfig  # noqa: E402
from creditops.deploy.controller import StepReport, run_canary  # noqa: E402
from creditops.deploy.history import DeploymentHistory  # noqa: E402
from creditops.deploy.local import SteadyLoad, model_server, predictor_command  # noqa: E402
from creditops.deploy.release import approve, smoke_test  # noqa: E402
from creditops.deploy.router import AuditCounter, Backend, LocalTarget, LocalWindow, Router, serving  # noqa: E402
from predictor.testing import random_features, tiny_bundle  # noqa: E402

MODEL = "credit"


def shifted_bundle(src: Path, dst: Path, shift: float) -> Path:
    """A copy of a bundle whose calibration maps raw p to min(1, p + shift): every PD moves up."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["calibration"] = {"x": [0.0, 1.0 - shift, 1.0], "y": [shift, 1.0, 1.0]}
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def start_servers(stack: ExitStack, specs: dict[str, Any]) -> dict[str, str]:
    """Enter every model server's context concurrently (each waits for its model to load)."""
    urls: dict[str, str] = {}
    errors: list[BaseException] = []
    managers = dict(specs)

    def enter(name: str) -> None:
        try:
            urls[name] = managers[name].__enter__()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=enter, args=(n,)) for n in managers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in urls:
        stack.push(managers[name].__exit__)
    if errors:
        raise errors[0]
    return urls


def canary_figures(router: Router, result: Any, load: SteadyLoad, errors_before: int) -> dict[str, Any]:
    canary_starts = [
        o.start for o in router.observations if o.arm == "canary" and o.start >= result.started_at
    ]
    first = min(canary_starts) if canary_starts else result.started_at
    fired = sorted({v.name for r in result.reports for v in r.verdicts if v.failed})
    return {
        "outcome": result.outcome,
        "reason": result.reason,
        "judges_failed": fired,
        "first_request_to_rollback_s": round(result.rolled_back_at - first, 2)
        if result.rolled_back_at
        else None,
        "canary_requests": len(canary_starts),
        "canary_failed_calls": sum(
            1 for o in router.observations if o.arm == "canary" and o.start >= result.started_at and not o.ok
        ),
        "client_errors": load.stats.errors - errors_before,
        "checks": len(result.reports),
        "last_check": {v.name: f"{v.status}: {v.detail}" for v in result.reports[-1].verdicts}
        if result.reports
        else {},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interval", type=float, default=10.0, help="analysis interval per step, seconds")
    ap.add_argument("--check-every", type=float, default=2.0)
    ap.add_argument("--threshold", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4, help="client threads of the steady load")
    ap.add_argument("--rows", type=int, default=25, help="applicants per request")
    ap.add_argument("--error-rate", type=float, default=0.5)
    ap.add_argument("--shift", type=float, default=0.05, help="added to every PD of the shifted one")
    ap.add_argument("--quick", action="store_true", help="interval 4 s, check every 1 s")
    args = ap.parse_args()
    if args.quick:
        args.interval, args.check_every = 4.0, 1.0
    cfg = CanaryConfig(
        steps=[10, 25, 50, 100],
        interval_s=args.interval,
        check_every_s=args.check_every,
        threshold=args.threshold,
        progress_deadline_s=max(120.0, 6 * args.interval),
    )
    rows = json.loads(random_features(20_000, seed=11).to_json(orient="records"))

    def instances(i: int) -> list[dict[str, Any]]:
        start = (i * args.rows) % (len(rows) - args.rows)
        return rows[start : start + args.rows]

    out: dict[str, Any] = {
        "config": cfg.model_dump(),
        "rows_per_request": args.rows,
        "client_threads": args.threads,
    }
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        audit_url = f"sqlite:///{root / 'audit.db'}"
        history = DeploymentHistory(f"sqlite:///{root / 'deployments.db'}")
        champion_dir = tiny_bundle(root / "v1", seed=0)
        good_dir = tiny_bundle(root / "v2", seed=1)
        shifted_dir = shifted_bundle(good_dir, root / "v2-shifted", args.shift)

        def server(bundle: Path, name: str, launcher: tuple[str, ...] = ("-m", "predictor")) -> Any:
            return model_server(
                lambda port: predictor_command(str(bundle), audit_url, port, MODEL, launcher=launcher),
                MODEL,
                root / f"{name}.log",
                timeout_s=600,
            )

        t0 = time.monotonic()
        champion_url = start_servers(stack, {"v1": server(champion_dir, "v1")})["v1"]
        router = Router(Backend(champion_url, "v1"), MODEL, rollout_id="bench")
        url = stack.enter_context(serving(router.app))
        load = stack.enter_context(
            SteadyLoad(f"{url}/v1/models/{MODEL}:predict", instances, threads=args.threads)
        )
        time.sleep(5)
        champion_ms = statistics.median(o.latency_ms for o in router.observations if o.ok)
        delay_ms = 9 * champion_ms
        faults_err = ("-m", "router.faults", "--error-rate", str(args.error_rate), "--")
        faults_slow = ("-m", "router.faults", "--delay-ms", f"{delay_ms:.1f}", "--")
        urls = start_servers(
            stack,
            {
                "errors": server(good_dir, "errors", faults_err),
                "slow": server(good_dir, "slow", faults_slow),
                "shifted": server(shifted_dir, "shifted"),
            },
        )
        out["servers_start_s"] = round(time.monotonic() - t0, 1)
        out["champion_median_ms"] = round(champion_ms, 2)
        out["slow_injected_delay_ms"] = round(delay_ms, 1)

        def log(name: str) -> Any:
            def on_report(r: StepReport) -> None:
                failed = [f"{v.name}: {v.detail}" for v in r.verdicts if v.failed]
                print(f"[{name}] canary {r.weight:3d} % {r.action.kind:14s} {'; '.join(failed)}", flush=True)

            return on_report

        out["bad"] = {}
        for name in ("errors", "slow", "shifted"):
            before = load.stats.errors
            router.rollout_id = f"bench-{name}"
            target = LocalTarget(router, Backend(urls[name], name))
            window = LocalWindow(router, AuditCounter(audit_url, router.rollout_id))
            result = run_canary(target, window, cfg, on_report=log(name))
            time.sleep(0.5)
            out["bad"][name] = canary_figures(router, result, load, before)
            print(json.dumps({name: out["bad"][name]}), flush=True)

        # good challenger: registered (bundle exists) -> staging -> canary -> approval -> champion
        before = load.stats.errors
        t_good = time.monotonic()
        staging = ExitStack()
        staging_url = start_servers(staging, {"staging": server(good_dir, "staging")})["staging"]
        smoke = smoke_test(staging_url, MODEL, rows[:5])
        staging.close()
        history.record(
            "staging", MODEL, "v2", "smoke_passed" if smoke.ok else "smoke_failed", details=smoke.detail
        )
        t_staged = time.monotonic()
        good_url = start_servers(stack, {"good": server(good_dir, "good")})["good"]
        t_canary = time.monotonic()
        router.rollout_id = "bench-good"

        def approver() -> bool:
            approve(history, MODEL, "v2", actor="bench", reason="canary analysis passed every step")
            return True

        result = run_canary(
            LocalTarget(router, Backend(good_url, "v2")),
            LocalWindow(router, AuditCounter(audit_url, router.rollout_id)),
            cfg,
            approver=approver,
            on_report=log("good"),
        )
        if result.outcome == "promoted":
            history.record("prod", MODEL, "v2", "promoted", serving="v2", actor="bench")
        t_done = time.monotonic()
        time.sleep(1)
        good = canary_figures(router, result, load, before)
        good.update(
            {
                "smoke_ok": smoke.ok,
                "steps_passed": [r.weight for r in result.reports if r.action.kind == "advance"],
                "staging_s": round(t_staged - t_good, 1),
                "canary_server_start_s": round(t_canary - t_staged, 1),
                "canary_to_champion_s": round(t_done - t_canary, 1),
                "registered_to_champion_s": round(t_done - t_good, 1),
                "champion_after": router.table.champion.version,
                "approval": history.approval(MODEL, "v2").actor if history.approval(MODEL, "v2") else None,
            }
        )
        out["good"] = good
        load.__exit__(None, None, None)  # stop the clients before any server goes away
        out["load"] = {
            "requests": load.stats.requests,
            "rows": load.stats.rows,
            "client_errors": load.stats.errors,
            "error_samples": list(load.stats.error_samples),
            "client_p50_ms": round(statistics.median(load.stats.latencies_ms), 1),
            "wall_s": round(time.monotonic() - t0, 1),
        }
        history.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
