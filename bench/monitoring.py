"""Benchmark and detection figures of creditops monitoring.

Usage::

    python bench/monitoring.py speed                # 100,000 decisions x all 46 model features, in memory
    python bench/monitoring.py postgres --rows 1000000   # full run over a Postgres audit log
    python bench/monitoring.py detection            # smallest shift each judge catches, false alarms

Each mode prints a few human lines, then as the LAST line one JSON object with the numbers.

The synthetic population has the 46 model features of ``credit_scoring_v1`` (names from the feature
registry) with credit-like marginals: normal and log-normal amounts, Poisson counts, category codes and
flags. ``postgres`` writes the decisions through :class:`creditops.governance.audit.AuditLog` (hash chain,
COPY) into a fresh database that is dropped afterwards; set ``CREDITOPS_BENCH_PG`` to use another server.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import uuid

import numpy as np
import pandas as pd


def peak_rss_gb() -> float:
    """Peak resident memory of this process (GB)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e9


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (wall time on a shared machine also counts waiting)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def feature_names() -> list[str]:
    """The model features of credit_scoring_v1."""
    from creditops.features.registry import FEATURES

    return [f.name for f in FEATURES]


def population(n: int, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    """Credit-like inputs; ``shift`` moves a feature by that many of its standard deviations."""
    rng = np.random.default_rng(seed)
    cols = {}
    for j, name in enumerate(feature_names()):
        kind = j % 5
        if name.endswith("_code"):
            cols[name] = rng.integers(0, 5, n).astype(float)
        elif name.startswith("ever_"):
            cols[name] = (rng.random(n) < 0.2).astype(float)
        elif kind == 0:
            cols[name] = rng.normal(0.0, 1.0, n)
        elif kind == 1:
            cols[name] = rng.lognormal(3.0, 0.5, n)
        elif kind == 2:
            cols[name] = rng.poisson(1.5, n).astype(float)
        elif kind == 3:
            cols[name] = rng.beta(2, 5, n)
        else:
            cols[name] = rng.gamma(2.0, 10.0, n)
    frame = pd.DataFrame(cols)
    for name, sd in (shift or {}).items():
        frame[name] = frame[name] + sd * frame[name].std()
    return frame


def decisions(frame: pd.DataFrame, seed: int, pd_shift: float = 0.0) -> pd.DataFrame:
    """PD, score and decision per row from a fixed logistic score of a few inputs."""
    rng = np.random.default_rng(seed + 1)
    z = frame["credit_score"].to_numpy() if "credit_score" in frame else rng.normal(size=len(frame))
    logit = -2.6 - 1.6 * (z - z.mean()) / (z.std() + 1e-9) + 0.3 * rng.normal(size=len(frame)) + pd_shift
    p = 1 / (1 + np.exp(-logit))
    out = pd.DataFrame({"pd": p})
    out["score"] = 600 + 20 / np.log(2) * np.log((1 - p) / p)
    out["decision"] = np.where(p < 0.1, "approve", np.where(p < 0.3, "review", "decline"))
    return out


def reference_for(n: int = 50_000, seed: int = 0):
    """Monitoring reference from a training-like sample and validation decisions."""
    from creditops.monitoring.reference import build_reference

    train = population(n, seed)
    dec = decisions(train, seed)
    y = (np.random.default_rng(seed + 2).random(n) < dec["pd"]).astype(float)
    return build_reference(
        train, feature_names(), dec["pd"], y, dec["score"], dec["decision"], model_name="bench",
        labels=["bench@1"],
    )  # fmt: skip


def window_of(frame: pd.DataFrame, dec: pd.DataFrame, seed: int):
    """A DecisionWindow of served rows."""
    from creditops.monitoring.window import window_from_frame

    rng = np.random.default_rng(seed + 3)
    full = pd.concat([frame, dec], axis=1)
    full["caller_id"] = rng.choice(["web", "branch", "broker"], len(full))
    full["reason"] = rng.choice(["credit_score", "debt_to_income", "credit_utilisation"], len(full))
    return window_from_frame(full, feature_names(), "bench@1")


def cmd_speed(args: argparse.Namespace) -> dict:
    """Drift + PSI/CSI + KS + prediction monitoring on one window of ``--rows`` decisions."""
    from creditops.monitoring.window import analyse_window

    ref = reference_for()
    frame = population(args.rows, 1, {"credit_score": 0.3})
    w = window_of(frame, decisions(frame, 1), 1)
    analyse_window(ref, w)  # warm-up (imports, scipy distributions)
    times, cpus = [], []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), cpu_seconds()
        report = analyse_window(ref, w)
        times.append(time.perf_counter() - t0)
        cpus.append(cpu_seconds() - c0)
    best = min(times)
    print(f"{args.rows:,} decisions x {len(ref.features)} features: {best:.3f} s (best of {args.repeat})")
    print(f"flagged: {report.drifted()} significant: {[f.name for f in report.features if f.level != 'ok']}")
    return {
        "mode": "speed", "rows": args.rows, "features": len(ref.features), "seconds_best": round(best, 4),
        "seconds_median": round(float(np.median(times)), 4), "cpu_s_best": round(min(cpus), 4),
        "load_avg_1m": round(os.getloadavg()[0], 1), "peak_rss_gb": round(peak_rss_gb(), 3),
    }  # fmt: skip


def _records(n: int, seed: int, t0: pd.Timestamp, days: int):
    """Audit records of synthetic served decisions spread over ``days``."""
    from creditops.governance.audit import AuditRecord

    frame = population(n, seed, None)
    dec = decisions(frame, seed)
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, days * 86_400, n))
    stamps = (t0 + pd.to_timedelta(offsets, unit="s")).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    names = feature_names()
    values = frame[names].to_numpy().round(6).tolist()
    pdv, sc, dv = dec["pd"].tolist(), dec["score"].tolist(), dec["decision"].tolist()
    callers = rng.choice(["web", "branch", "broker"], n)
    for i in range(n):
        inputs = {"applicant_id": int(seed * 10_000_000 + i), **dict(zip(names, values[i], strict=True))}
        yield AuditRecord(
            prediction_id=uuid.UUID(int=rng.integers(0, 2**63) << 64 | i).hex,
            model_name="bench", model_version="bench@1", inputs=inputs,
            output={"pd": pdv[i], "score": sc[i]},
            explanation=[{"feature": "credit_score", "reason": "Credit score is low", "contribution": 0.1}],
            decision=dv[i], caller_id=str(callers[i]), ts=str(stamps[i]),
        )  # fmt: skip


def cmd_postgres(args: argparse.Namespace) -> dict:
    """Write ``--rows`` audited decisions to a fresh Postgres database, then time a full monitoring run."""
    import psycopg

    from creditops.config import MonitoringConfig
    from creditops.data.outcomes import join_outcomes, synthetic_outcomes
    from creditops.governance.audit import AuditLog
    from creditops.monitoring.reference import ReferenceSet
    from creditops.monitoring.run import run_monitoring
    from creditops.monitoring.source import read_audit_decisions

    admin = os.environ.get("CREDITOPS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    db = args.db or f"creditops_bench_mon_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{db}"')
    url = admin.rsplit("/", 1)[0] + f"/{db}"
    try:
        t0 = pd.Timestamp("2026-01-01", tz="UTC")
        t_write = time.perf_counter()
        with AuditLog.open(url) as audit:
            have = audit.count()
            if have < args.rows:  # a kept database (--db) is reused when it already holds the rows
                batch: list = []
                for rec in _records(args.rows - have, 7 + have, t0, args.days):
                    batch.append(rec)
                    if len(batch) == 50_000:
                        audit.append(batch)
                        batch = []
                audit.append(batch)
        write_s = time.perf_counter() - t_write
        print(f"audit log holds {args.rows:,}+ records ({write_s:.1f} s to write what was missing)")
        ref = reference_for()
        rss0 = peak_rss_gb()
        cpu0 = cpu_seconds()
        t_run = time.perf_counter()
        d = read_audit_decisions(url, feature_names(), end=t0 + pd.Timedelta(days=args.days))
        read_s = time.perf_counter() - t_run
        frame = pd.DataFrame({"applicant_id": d.applicant_id, "ts": d.ts, "pd": d.pd})
        as_of = t0 + pd.Timedelta(days=args.days)
        out = synthetic_outcomes(frame, horizon_days=args.days // 2, delay_days=0, as_of=as_of)
        t_join = time.perf_counter()
        joined = join_outcomes(d.prediction_id, d.applicant_id, d.ts, out, as_of)
        join_s = time.perf_counter() - t_join
        t_mon = time.perf_counter()
        run = run_monitoring(d, ReferenceSet([ref]), MonitoringConfig(), outcomes=joined)
        monitor_s = time.perf_counter() - t_mon
        total = read_s + join_s + monitor_s
        cpu_run = cpu_seconds() - cpu0
        matured = sum(1 for w in run.windows if w.performance and "auc" in w.performance)
        print(
            f"read {len(d):,} decisions in {read_s:.1f} s; outcome join {join_s:.1f} s; "
            f"{len(run.windows)} windows ({matured} with matured outcomes) monitored in {monitor_s:.1f} s"
        )
        return {
            "mode": "postgres", "rows": len(d), "features": len(feature_names()), "windows": len(run.windows),
            "windows_with_outcomes": matured, "write_s": round(write_s, 1), "read_s": round(read_s, 2),
            "join_s": round(join_s, 2), "monitor_s": round(monitor_s, 2), "total_s": round(total, 2),
            "client_cpu_s": round(cpu_run, 1), "load_avg_1m": round(os.getloadavg()[0], 1),
            "peak_rss_gb": round(peak_rss_gb(), 2), "peak_rss_before_run_gb": round(rss0, 2),
        }  # fmt: skip
    finally:
        if not args.db:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def cmd_detection(args: argparse.Namespace) -> dict:
    """Smallest shift each judge catches (>= 80 % of windows) at the window size, and null false alarms."""
    from scipy import stats

    from creditops.monitoring.performance import calibration_backtest, discrimination_with_intervals
    from creditops.monitoring.window import feature_stats

    ref = reference_for()
    names = feature_names()
    # a continuous (normal) feature: shifting a discrete one (counts, codes) by a fraction of its SD moves
    # every value off its tie with a bin edge, which any binned judge "catches" at 0.02 SD
    j = next(i for i, name in enumerate(names) if i % 5 == 0 and not name.endswith("_code"))
    target = names[j]
    n = args.window_rows
    reps = args.reps
    shifts = [0.02, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0]
    judges = ("psi_significant", "psi_warn", "psi_act", "ks_bh")
    power: dict[str, dict[float, float]] = {k: {} for k in judges}
    for s in shifts:
        hits = dict.fromkeys(judges, 0)
        for r in range(reps):
            frame = population(n, 1000 + r, {target: s})
            f = feature_stats(ref, frame[names].to_numpy())[j]
            hits["psi_significant"] += f.level != "ok"
            hits["psi_warn"] += f.level in ("warn", "act")
            hits["psi_act"] += f.level == "act"
            hits["ks_bh"] += f.ks_drifted
        for k in judges:
            power[k][s] = hits[k] / reps
    smallest = {k: next((s for s in shifts if power[k][s] >= 0.8), None) for k in judges}
    # false alarms: 100 windows without drift, any of the 46 features flagged
    null = dict.fromkeys(judges, 0)
    per_feature = dict.fromkeys(judges, 0)
    for r in range(args.null_windows):
        frame = population(n, 50_000 + r)
        fs = feature_stats(ref, frame[names].to_numpy())
        flags = {
            "psi_significant": [f.level != "ok" for f in fs],
            "psi_warn": [f.level in ("warn", "act") for f in fs],
            "psi_act": [f.level == "act" for f in fs],
            "ks_bh": [f.ks_drifted for f in fs],
        }
        for k, v in flags.items():
            null[k] += any(v)
            per_feature[k] += sum(v)
    false_alarm = {k: null[k] / args.null_windows for k in judges}
    per_feature_rate = {k: per_feature[k] / (args.null_windows * len(names)) for k in judges}
    # calibration (Jeffreys, one grade at PD ~5 %): smallest default-rate multiplier flagged amber / red
    rng = np.random.default_rng(9)
    mults = [1.1, 1.2, 1.3, 1.4, 1.5, 1.75, 2.0, 2.5, 3.0]
    cal: dict[str, float | None] = {"amber": None, "red": None}
    cal_power = {}
    for m in mults:
        amber = red = 0
        for _ in range(reps):
            p = np.full(n, 0.04)
            y = rng.random(n) < np.minimum(p * m, 1)
            light = calibration_backtest(y, p)[0]["light"]
            amber += light in ("amber", "red")
            red += light == "red"
        cal_power[m] = (amber / reps, red / reps)
        if cal["amber"] is None and amber / reps >= 0.8:
            cal["amber"] = m
        if cal["red"] is None and red / reps >= 0.8:
            cal["red"] = m
    cal_null = 0
    for _ in range(args.null_windows):
        p = np.full(n, 0.04)
        cal_null += calibration_backtest(rng.random(n) < p, p)[0]["light"] != "green"
    # AUC floor: concept drift weight w (unseen risk factor) at which matured AUC < 0.78 in 80 % of windows
    from creditops.data.outcomes import synthetic_outcomes

    base = decisions(population(n, 3), 3)
    auc_hits = {}
    auc_smallest = None
    for w in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7):
        hits = 0
        for r in range(max(reps // 2, 10)):
            frame = pd.DataFrame({"prediction_id": np.arange(n).astype(str), "ts": pd.Timestamp("2026-01-01"),
                                  "pd": base["pd"]})  # fmt: skip
            out = synthetic_outcomes(frame, seed=r, concept_drift=w)
            perf = discrimination_with_intervals(out["defaulted"].to_numpy(), base["pd"].to_numpy(), n_boot=0)
            hits += perf["auc"] < 0.78
        auc_hits[w] = hits / max(reps // 2, 10)
        if auc_smallest is None and auc_hits[w] >= 0.8:
            auc_smallest = w
    undrifted = synthetic_outcomes(
        pd.DataFrame(
            {"prediction_id": np.arange(n).astype(str), "ts": pd.Timestamp("2026-01-01"), "pd": base["pd"]}
        )
    )
    base_auc = discrimination_with_intervals(
        undrifted["defaulted"].to_numpy(), base["pd"].to_numpy(), n_boot=0
    )
    crit = ref.features[j]
    critical = stats.chi2.ppf(0.95, 9) * (1 / crit.n + 1 / n)
    print(f"window {n:,} decisions vs reference {crit.n:,} rows; PSI critical value {critical:.4f}")
    for k in judges:
        print(
            f"  {k:16s} smallest shift caught (>=80%): {smallest[k]} SD; false alarm over "
            f"{args.null_windows} null windows (any of {len(names)} features): {false_alarm[k]:.0%}"
        )
    print(
        f"  calibration: amber at x{cal['amber']}, red at x{cal['red']} default rate; "
        f"null non-green {cal_null}"
    )
    print(f"  AUC < 0.78 (base {base_auc['auc']:.3f}): concept drift weight {auc_smallest}")
    return {
        "mode": "detection", "window_rows": n, "reference_rows": crit.n, "reps": reps,
        "smallest_shift_sd": smallest, "power": {k: {str(s): v for s, v in power[k].items()} for k in judges},
        "null_windows": args.null_windows, "false_alarm_any_feature": false_alarm,
        "false_alarm_per_feature": per_feature_rate,
        "calibration_smallest_multiplier": cal, "calibration_null_non_green": cal_null / args.null_windows,
        "auc_floor_concept_drift": auc_smallest, "auc_base": round(base_auc["auc"], 4),
        "psi_critical_value": round(float(critical), 5),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    """Parse arguments, run one mode, print its JSON last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("speed")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=5)
    p = sub.add_parser("postgres")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--db", help="keep the audit database under this name and reuse it on the next run")
    p = sub.add_parser("detection")
    p.add_argument("--window-rows", type=int, default=2000)
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--null-windows", type=int, default=100)
    args = parser.parse_args(argv)
    result = {"speed": cmd_speed, "postgres": cmd_postgres, "detection": cmd_detection}[args.mode](args)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
