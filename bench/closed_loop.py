"""The closed loop end to end on this machine, with its timeline.

Train and promote a champion; serve it (a real predictor process, audit on SQLite) under a steady stream of
applications with their features; then lower every applicant's credit score by ``--shift`` points (the
injected drift: a downturn in the bureau data). Monitoring runs over the audit log every window, the trigger
policy sees ``FeatureDriftAct`` persist for two windows and starts the retraining pipeline (KFP local
runner); its gated challenger is canaried on the local router under the same stream; the canary waits for
an approval, which a second actor records with the real ``creditops deploy approve`` command; the champion
alias moves. Every step is a row of the deployment history and every answer a record of the audit log.

Usage: ``.venv/bin/python bench/closed_loop.py [--applicants 10000] [--trials 10] [--window-s 20] [--quick]``
(``--quick``: 6,000 applicants, 3 trials, lenient gates so the small models register; what the end-to-end
test runs; the retraining window holds about a third of them). The last line printed is one JSON object:
the timeline in seconds from the drift injection.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from creditops import cli  # noqa: E402
from creditops.artifact import load_bundle  # noqa: E402
from creditops.config import Settings, load_config  # noqa: E402
from creditops.deploy.commands import canary_local, history_of, served_version  # noqa: E402
from creditops.deploy.local import SteadyLoad  # noqa: E402
from creditops.deploy.release import promote_to_champion  # noqa: E402
from creditops.governance.registry import CHAMPION, alias_version, resolve  # noqa: E402
from creditops.monitoring.app import monitor_once  # noqa: E402
from creditops.monitoring.loop import close_loop  # noqa: E402

#: Small models on a few thousand applicants cannot pass every production threshold; the quick run is about
#: the loop.
LENIENT_GATES = {
    "min_auc": 0.5, "max_fpr": 1.0, "min_recall": 0.0, "max_demographic_parity_difference": 1.0,
    "max_equal_opportunity_difference": 1.0, "min_adverse_impact_ratio": 0.0, "max_perturbation_shift": 1.0,
    "baseline_tolerance": 1.0, "max_calibration_auc_change": 1.0, "champion_tolerance": 0.2,
    "fairness_bootstrap_resamples": 50,
}  # fmt: skip


def drill_settings(workdir: Path, applicants: int, trials: int, window_s: int, quick: bool) -> Settings:
    """The embedded defaults, small and fast where the drill needs it; the trigger policy as shipped except
    that no outcomes mature in a few minutes (``min_new_outcomes`` 0), no schedule fires (drift must) and,
    time being compressed, there is no cooldown after the champion's own training."""
    overrides: dict[str, Any] = {
        "workdir": str(workdir),
        "data": {"n_applicants": applicants},
        "training": {"n_trials": trials, **({"objective": "valid", "cv_folds": 2} if quick else {})},
        "monitoring": {
            "window": f"{window_s}s",
            "min_window_rows": 100,
            # time is compressed (20 s windows stand for days): no cooldown after the champion's training
            "retraining": {"min_new_outcomes": 0, "schedule_days": None, "cooldown_days": 0},
        },
        "deploy": {
            "router_port": 0,
            "canary": {
                "steps": [25, 50],
                "interval_s": 8.0,
                "check_every_s": 2.0,
                "min_requests": 10,
                "progress_deadline_s": 120.0,
            },
        },  # fmt: skip
    }
    if quick:
        overrides["gates"] = LENIENT_GATES
    return load_config(None, overrides).resolved()


def application_rows(summary: dict[str, Any], features: list[str]) -> list[dict[str, Any]]:
    """Every application of the champion's training set as a request with its features, shuffled.

    A window of the stream is then a sample of them without repeats (repeated rows would make any sample
    look drifted against the sample-size critical value).
    """
    root = Path(summary["model_card_html"]).parents[1] / "build-training-set"
    rows = pd.concat([pd.read_parquet(root / split)[features] for split in ("train", "valid", "test")])
    return json.loads(rows.sample(frac=1.0, random_state=0).to_json(orient="records"))


class Stream:
    """Round-robin over the applications; ``drift`` lowers every credit score by ``shift`` from then on."""

    def __init__(self, rows: list[dict[str, Any]], shift: float, per_request: int = 5) -> None:
        self.rows, self.shift, self.per_request = rows, shift, per_request
        self.drifted = threading.Event()

    def __call__(self, i: int) -> list[dict[str, Any]]:
        start = (i * self.per_request) % max(1, len(self.rows) - self.per_request)
        batch = [dict(r) for r in self.rows[start : start + self.per_request]]
        if self.drifted.is_set():
            for r in batch:
                r["credit_score"] = max(300, int(r["credit_score"] - self.shift))
        return batch


def approve_when_asked(config: Path, settings: Settings, stop: threading.Event, approved: list[str]) -> None:
    """A risk officer: approves a challenger once its canary waits for approval, with the real CLI."""
    history = history_of(settings)
    model = settings.mlflow.model_name
    while not stop.wait(1.0):
        waiting = [e for e in history.events("prod", model) if e.event == "awaiting_approval"]
        for e in waiting:
            if e.version not in approved:
                why = f"closed-loop drill: canary of v{e.version} passed every step"
                args = ["--config", str(config), "deploy", "approve", "--version", e.version]
                cli.main([*args, "--by", "risk-officer", "--reason", why])
                approved.append(e.version)


def drill(
    workdir: Path, applicants: int, trials: int, window_s: int, shift: float, quick: bool
) -> dict[str, Any]:
    from pipelines.local import run_training

    settings = drill_settings(workdir, applicants, trials, window_s, quick)
    config = workdir / "drill.yaml"
    config.write_text(yaml.safe_dump(json.loads(settings.model_dump_json())))
    model, tracking = settings.mlflow.model_name, settings.mlflow.tracking_uri
    t0 = time.monotonic()
    first = run_training(settings, emit=lambda line: print(line, flush=True))
    champion = first["registered_version"]
    if not champion:
        raise SystemExit(f"the champion did not pass its gates: {first['gate_summary']}")
    history = history_of(settings)
    promote_to_champion(
        history, tracking, model, champion, auto=True, reason="closed-loop drill: first model"
    )
    trained_s = time.monotonic() - t0
    bundle = load_bundle(resolve(tracking, f"models:/{model}/{champion}"))
    stream = Stream(application_rows(first, list(bundle.manifest.features)), shift)
    timeline: dict[str, float] = {}
    checks: list[dict[str, Any]] = []
    stop, approved = threading.Event(), []
    officer = threading.Thread(
        target=approve_when_asked, args=(config, settings, stop, approved), daemon=True
    )
    officer.start()

    def canary(s: Settings, version: str) -> Any:
        load.__exit__(None, None, None)  # the clients move to the router
        return canary_local(s, version, cli.console, load_instances=stream, port=0)

    freq = pd.Timedelta(seconds=window_s)
    result = None
    with served_version(settings, champion, f"prod-v{champion}") as url:
        path = f"{url}/v1/models/{settings.serving.model_name}:predict"
        load = SteadyLoad(path, stream, threads=1, pause_s=0.1)  # ~40 applications/s
        with load:
            time.sleep(1.5 * window_s)  # one clean window first
            stream.drifted.set()
            drift_at = datetime.now(UTC)
            t_drift = time.monotonic()
            while time.monotonic() - t_drift < 20 * window_s:
                time.sleep(window_s / 2)
                t_check = round(time.monotonic() - t_drift, 1)
                end = pd.Timestamp.now(tz="UTC").floor(freq)  # complete windows only
                run = monitor_once(settings, start=(end - 6 * freq).isoformat(), end=end.isoformat())
                result = close_loop(
                    settings, run, history=history,
                    retrain=lambda s, why: cli._retrain(s, why, 12), canary=canary,
                )  # fmt: skip
                fired = [sorted({a.name for a in w}) for w in result.inputs.alerts]
                checks.append({"t": t_check, "alerts": fired,
                               "retrain": result.decision.retrain})  # fmt: skip
                print(f"check {checks[-1]}; blockers {result.decision.blockers}", flush=True)
                if fired and fired[-1] and "first_alert" not in timeline:
                    timeline["first_alert"] = t_check
                if result.decision.retrain:
                    break
    stop.set()
    since = drift_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    events = [e for e in history.events(None, model) if e.ts >= since]
    for e in events:
        key = f"{e.environment}:{e.event}"
        if key not in timeline:
            timeline[key] = (datetime.fromisoformat(e.ts.replace("Z", "+00:00")) - drift_at).total_seconds()
    new_champion = alias_version(tracking, model, CHAMPION)
    return {
        "applicants": applicants, "trials": trials, "window_s": window_s, "credit_score_shift": shift,
        "first_training_s": round(trained_s, 1), "old_champion": champion, "new_champion": new_champion,
        "promoted": getattr(getattr(result, "rollout", None), "outcome", None) == "promoted",
        "decision": None if result is None else result.decision.to_dict(),
        "champion_stream": {"requests": load.stats.requests, "client_errors": load.stats.errors},
        "checks": checks, "approved_by_officer": approved,
        "timeline_s": {k: round(v, 1) for k, v in sorted(timeline.items(), key=lambda kv: kv[1])},
        "history": [
            {"env": e.environment, "event": e.event, "version": e.version, "actor": e.actor, "ts": e.ts,
             **({"details": e.details} if e.event == "canary_started" else {})}
            for e in events
        ],
        "workdir": str(workdir),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--applicants", type=int, default=10_000)
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--window-s", type=int, default=20, help="monitoring window, seconds")
    p.add_argument("--shift", type=float, default=80.0, help="credit score points taken off after the drift")
    p.add_argument("--quick", action="store_true", help="6,000 applicants, 3 trials, lenient gates")
    p.add_argument("--workdir", type=Path, help="keep everything here (default: a temp dir)")
    args = p.parse_args(argv)
    if args.quick:
        args.applicants, args.trials = 6000, 3
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="closed-loop-"))
    workdir.mkdir(parents=True, exist_ok=True)
    out = drill(workdir, args.applicants, args.trials, args.window_s, args.shift, args.quick)
    print(json.dumps(out, default=str))
    return 0 if out["promoted"] else 1


if __name__ == "__main__":
    sys.exit(main())
