"""The monitoring dashboard as one static HTML file (plots embedded as PNG, no external assets).

Sections: alerts of the newest windows; drift per feature over time (PSI heat map and the most-moved
features against the 0.10 / 0.25 thresholds); score distribution (reference vs newest window); approve /
review / decline rates; AUC with bootstrap intervals and calibration per grade as outcomes mature; fairness
(adverse impact ratio per group over time); vintage curves; predictor latency when its metrics are given.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from creditops.monitoring.alerts import Alert, evaluate_alerts
from creditops.monitoring.run import MonitoringRun


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return '<img alt="plot" src="data:image/png;base64,' + base64.b64encode(buf.getvalue()).decode() + '">'


def _fig(w: float = 9.0, h: float = 3.2) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(w, h))


def _label(start: str) -> str:
    return start[:16].replace("T", " ") if start else "?"


def latency_from_metrics(
    text: str, name: str = "creditops_predictor_request_seconds"
) -> dict[str, dict[str, float]]:
    """p50 / p90 / p99 per model from the predictor's latency histogram in a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[str, list[tuple[float, float]]] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name != name:
            continue
        for s in fam.samples:
            if s.name.endswith("_bucket"):
                model = s.labels.get("model", "")
                buckets.setdefault(model, []).append((float(s.labels["le"]), s.value))
    out: dict[str, dict[str, float]] = {}
    for model, pairs in buckets.items():
        agg: dict[float, float] = {}
        for le, v in pairs:
            agg[le] = agg.get(le, 0.0) + v
        les = sorted(agg)
        counts = np.array([agg[le] for le in les])
        total = counts[-1] if counts.size else 0
        if total <= 0:
            continue
        q = {}
        for name_q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
            i = int(np.searchsorted(counts, p * total))
            q[name_q] = les[min(i, len(les) - 1)] if not math.isinf(les[min(i, len(les) - 1)]) else les[-2]
        out[model] = q
    return out


def render_report(
    run: MonitoringRun,
    path: str | Path,
    *,
    config: Any = None,
    latency: Mapping[str, Mapping[str, float]] | None = None,
    title: str = "creditops monitoring",
) -> Path:
    """Write the dashboard for a monitoring run; returns the path."""
    parts: list[str] = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}.critical{color:#b00}.warning{color:#a60}"
        ".red{background:#f99}.amber{background:#fd8}.green{background:#9e9}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{run.n_decisions:,} audited decisions, {len(run.windows)} windows, versions "
        f"{', '.join(html.escape(v) for v in run.references)}; run took {run.seconds:.2f} s.</p>",
    ]
    alerts: list[Alert] = [a for w in run.latest().values() for a in evaluate_alerts(w, config)]
    parts.append(f"<h2>Alerts (newest window per version): {len(alerts)}</h2>")
    if alerts:
        parts.append("<table><tr><th>severity</th><th>alert</th><th>summary</th><th>runbook</th></tr>")
        for a in alerts:
            parts.append(
                f"<tr><td class='{a.severity}'>{a.severity}</td><td>{html.escape(a.name)}</td>"
                f"<td>{html.escape(a.annotations.get('summary', ''))}</td>"
                f"<td>{html.escape(a.annotations.get('runbook', ''))}</td></tr>"
            )
        parts.append("</table>")
    for version in run.references:
        windows = [w for w in run.windows if w.model_version == version]
        if windows:
            parts.append(f"<h2>Model version {html.escape(version)}</h2>")
            parts.extend(_version_sections(run, version, windows))
    if run.vintages is not None and len(run.vintages):
        fig, ax = _fig()
        cols = [c for c in run.vintages.columns if c.startswith("mob_")]
        for _, row in run.vintages.iterrows():
            ax.plot(range(1, len(cols) + 1), [row[c] for c in cols], marker=".", label=row["vintage"])
        ax.set_xlabel("months on book")
        ax.set_ylabel("cumulative early-delinquency rate")
        ax.legend(fontsize=7, ncol=4)
        parts.append("<h2>Vintage curves</h2>" + _png(fig))
    if latency:
        fig, ax = _fig(6, 2.8)
        models = list(latency)
        for k, q in enumerate(("p50", "p90", "p99")):
            ax.bar(
                np.arange(len(models)) + k * 0.25,
                [latency[m].get(q, 0) * 1000 for m in models],
                0.25,
                label=q,
            )
        ax.set_xticks(np.arange(len(models)) + 0.25, models)
        ax.set_ylabel("ms")
        ax.legend()
        parts.append("<h2>Predictor latency</h2>" + _png(fig))
    parts.append("</body></html>")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts))
    return out


def _version_sections(run: MonitoringRun, version: str, windows: Sequence[Any]) -> list[str]:
    ref = run.references[version]
    labels = [_label(w.start) for w in windows]
    x = np.arange(len(windows))
    names = ref.feature_names()
    psi = np.array([[f.psi for f in w.features] for w in windows])  # windows x features
    out: list[str] = []
    fig, ax = _fig(9, max(2.5, 0.18 * len(names) + 1))
    im = ax.imshow(psi.T, aspect="auto", cmap="Reds", vmin=0, vmax=max(0.3, float(psi.max())))
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.set_xticks(x, labels, rotation=45, fontsize=7, ha="right")
    fig.colorbar(im, ax=ax, label="PSI")
    out.append("<h3>Drift per feature over time (CSI)</h3>" + _png(fig))
    top = np.argsort(-psi.max(axis=0))[:6]
    fig, ax = _fig()
    for j in top:
        ax.plot(x, psi[:, j], marker=".", label=names[j])
    ax.axhline(0.10, ls="--", c="orange", lw=1)
    ax.axhline(0.25, ls="--", c="red", lw=1)
    ax.set_xticks(x, labels, rotation=45, fontsize=7, ha="right")
    ax.set_ylabel("PSI")
    ax.legend(fontsize=7)
    out.append(_png(fig))
    latest = windows[-1]
    fig, ax = _fig(6, 2.8)
    shares = np.asarray(ref.score.shares[:-1])
    ax.bar(np.arange(shares.size) - 0.2, shares, 0.4, label="validation")
    ax.text(0.01, 0.95, f"score PSI {latest.score_psi:.3f}", transform=ax.transAxes, va="top")
    ax.set_xlabel("reference score decile")
    ax.set_ylabel("share")
    out.append("<h3>Score distribution (reference deciles, newest window)</h3>")
    if latest.score_shares:
        ax.bar(np.arange(shares.size) + 0.2, latest.score_shares[: shares.size], 0.4, label="newest window")
    ax.legend(fontsize=7)
    out.append(_png(fig))
    fig, ax = _fig()
    for d, c in (("approve", "g"), ("review", "orange"), ("decline", "r")):
        ax.plot(x, [w.decision_rates.get(d, 0) for w in windows], marker=".", c=c, label=d)
        if d in ref.decision_rates:
            ax.axhline(ref.decision_rates[d], ls=":", c=c, lw=1)
    ax.set_xticks(x, labels, rotation=45, fontsize=7, ha="right")
    ax.set_ylabel("share (dotted: validation)")
    ax.legend(fontsize=7)
    out.append("<h3>Approval / review / decline rates</h3>" + _png(fig))
    perf = [(i, w.performance) for i, w in enumerate(windows) if w.performance and "auc" in w.performance]
    if perf:
        fig, ax = _fig()
        xi = [i for i, _ in perf]
        auc = np.array([p["auc"] for _, p in perf])
        lo = np.array([p.get("auc_lo", p["auc"]) for _, p in perf])
        hi = np.array([p.get("auc_hi", p["auc"]) for _, p in perf])
        ax.errorbar(
            xi,
            auc,
            yerr=np.clip([auc - lo, hi - auc], 0, None),
            marker="o",
            capsize=3,
            label="matured AUC (95% CI)",
        )
        ax.axhline(ref.validation.auc, ls="--", c="grey", label=f"validation {ref.validation.auc:.3f}")
        ax.axhline(0.78, ls="--", c="red", lw=1, label="retrain floor 0.78")
        ax.set_xticks(x, labels, rotation=45, fontsize=7, ha="right")
        ax.legend(fontsize=7)
        out.append("<h3>Discrimination as outcomes mature</h3>" + _png(fig))
        w = windows[perf[-1][0]]
        if w.calibration:
            fig, ax = _fig(6, 2.8)
            g = w.calibration
            xs = np.arange(len(g))
            ax.bar(xs - 0.2, [r["mean_pd"] for r in g], 0.4, label="mean PD")
            rate = np.array([r["default_rate"] for r in g])
            err = np.clip([rate - [r["rate_lo"] for r in g], [r["rate_hi"] for r in g] - rate], 0, None)
            ax.errorbar(
                xs + 0.2, rate, yerr=err,
                fmt="o", c="k", capsize=3, label="default rate (Jeffreys 95%)",
            )  # fmt: skip
            ax.set_xticks(xs, [r["grade"] for r in g])
            ax.legend(fontsize=7)
            out.append(f"<h3>Calibration per grade, window {html.escape(_label(w.start))}</h3>" + _png(fig))
            out.append(
                "<table><tr><th>grade</th><th>n</th><th>defaults</th><th>PD</th><th>rate</th>"
                "<th>Jeffreys p</th></tr>"
            )
            for r in g:
                out.append(
                    f"<tr class='{r['light']}'><td>{r['grade']}</td><td>{r['n']}</td>"
                    f"<td>{r['defaults']}</td><td>{r['mean_pd']:.2%}</td><td>{r['default_rate']:.2%}</td>"
                    f"<td>{r['jeffreys_p']:.3g}</td></tr>"
                )
            out.append("</table>")
    fair = [(i, w.fairness) for i, w in enumerate(windows) if w.fairness]
    if fair:
        fig, ax = _fig()
        series: dict[str, list[tuple[int, float]]] = {}
        for i, rows in fair:
            for r in rows:
                if r["air"] == r["air"]:
                    series.setdefault(f"{r['attribute']}={r['group']}", []).append((i, r["air"]))
        for name, pts in series.items():
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=name)
        ax.axhline(0.8, ls="--", c="red", lw=1)
        ax.set_xticks(x, labels, rotation=45, fontsize=7, ha="right")
        ax.set_ylabel("adverse impact ratio")
        ax.legend(fontsize=6, ncol=3)
        out.append("<h3>Fairness over time</h3>" + _png(fig))
    dq = [f for f in latest.features if f.missing_rate or f.out_of_range_rate or f.unseen_rate]
    if dq:
        out.append("<h3>Data quality, newest window</h3><table><tr><th>feature</th><th>missing</th>"
                   "<th>reference missing</th><th>out of range</th><th>unseen</th></tr>")  # fmt: skip
        for f in dq:
            out.append(
                f"<tr><td>{html.escape(f.name)}</td><td>{f.missing_rate:.2%}</td>"
                f"<td>{f.reference_missing_rate:.2%}</td><td>{f.out_of_range_rate:.2%}</td>"
                f"<td>{f.unseen_rate:.2%}</td></tr>"
            )
        out.append("</table>")
    return out
