"""Model card: what the model is for, how it was validated, how fair it is and how it will be watched.

:func:`render` builds one document from the bundle, the gate report and the test set, and writes it twice:
Markdown (readable in a PR or the MLflow UI, images omitted or linked) and a self-contained HTML page with the
plots embedded as base64 PNGs (matplotlib's Agg canvas, no pyplot). Both come from the same list of sections,
so they cannot disagree.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_curve

from creditops.governance.gates import Gate, GateReport

DEFAULT_INTENDED_USE = (
    "Estimate the probability that a consumer credit applicant defaults within 12 months, to support an "
    "approve / review / decline decision on an individual application, with adverse-action reason codes."
)
DEFAULT_OUT_OF_SCOPE = (
    "Pricing, collections, marketing or any population unlike the training data (e.g. business lending); "
    "fully automated declines without the review band and human oversight."
)
DEFAULT_MONITORING_PLAN = (
    "Served inputs are logged to the hash-chained audit log; feature drift (KS with multiple-test "
    "correction, PSI) and prediction drift are checked on rolling windows against the reference sample "
    "shipped in the bundle; performance (AUC, calibration) is measured once 12-month outcomes arrive; a "
    "breach raises an alert and triggers the retraining pipeline, whose candidate must pass the same gates."
)


@dataclass
class _Section:
    title: str
    blocks: list[Any] = field(default_factory=list)


@dataclass
class _Table:
    frame: pd.DataFrame


@dataclass
class _Bullets:
    items: list[str]


@dataclass
class _Image:
    key: str
    caption: str


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Field of the manifest (pydantic model or mapping), or ``default``."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value)


def _subplots(figsize: tuple[float, float], ncols: int = 1) -> tuple[Figure, Any]:
    """A figure on the Agg canvas (no pyplot: no global backend switch, no figure registry to leak into)."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0] if ncols > 1 else fig.subplots()
    return fig, axes


def _fig_to_b64(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _contributions(bundle: Any, X: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Per-feature TreeSHAP contributions (margin units), bias column dropped."""
    raw = bundle.contributions(X)
    arr = raw[features].to_numpy() if isinstance(raw, pd.DataFrame) else np.asarray(raw)[:, : len(features)]
    return np.asarray(arr, dtype=float)


def _plots(
    bundle: Any,
    X: pd.DataFrame,
    y: np.ndarray | None,
    pd_: np.ndarray,
    contrib: np.ndarray,
    features: list[str],
    fairness_frames: dict[str, pd.DataFrame],
    top_k: int,
) -> dict[str, str]:
    """All figures as base64 PNG strings keyed by name."""
    out: dict[str, str] = {}
    if y is not None and len(np.unique(y)) == 2:
        fpr, tpr, _ = roc_curve(y, pd_)
        fig, ax = _subplots((4, 4))
        ax.plot(fpr, tpr, lw=1.5, label="model")
        ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="chance")
        ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC (test)")
        ax.legend(loc="lower right")
        out["roc"] = _fig_to_b64(fig)

        frac, mean_pred = calibration_curve(y, pd_, n_bins=10, strategy="quantile")
        fig, ax = _subplots((4, 4))
        ax.plot(mean_pred, frac, marker="o", lw=1.5, label="model")
        lim = max(float(np.max(mean_pred)), float(np.max(frac)), 0.05)
        ax.plot([0, lim], [0, lim], ls="--", c="grey", lw=1, label="perfect")
        ax.set(
            xlabel="mean predicted PD", ylabel="observed default rate", title="Calibration (test, deciles)"
        )
        ax.legend(loc="upper left")
        out["calibration"] = _fig_to_b64(fig)

    fig, ax = _subplots((6, 3))
    score_fn = getattr(bundle, "score_points", None)
    values, label = (np.asarray(score_fn(pd_), dtype=float), "score points") if score_fn else (pd_, "PD")
    if y is not None:
        ax.hist(values[y == 0], bins=40, alpha=0.6, density=True, label="repaid")
        ax.hist(values[y == 1], bins=40, alpha=0.6, density=True, label="defaulted")
        ax.legend()
    else:
        ax.hist(values, bins=40)
    ax.set(xlabel=label, ylabel="density", title="Score distribution (test)")
    out["score_distribution"] = _fig_to_b64(fig)

    mean_abs = np.abs(contrib).mean(axis=0)
    order = np.argsort(mean_abs)[::-1][:top_k]
    names = [features[i] for i in order]
    fig, ax = _subplots((6, 0.3 * len(order) + 1))
    ax.barh(names[::-1], mean_abs[order][::-1])
    ax.set(xlabel="mean |TreeSHAP contribution| (log-odds)", title="SHAP summary")
    out["shap_bar"] = _fig_to_b64(fig)

    # beeswarm-like: one dot per row and feature, colour = the feature value's rank within the test set
    fig, ax = _subplots((6, 0.3 * len(order) + 1))
    rng = np.random.default_rng(0)
    for pos, idx in enumerate(order[::-1]):
        col = X[features[idx]].astype(float)
        colour = col.rank(pct=True).fillna(0.5).to_numpy()
        ax.scatter(
            contrib[:, idx],
            pos + rng.uniform(-0.3, 0.3, len(col)),
            c=colour,
            cmap="coolwarm",
            s=4,
            alpha=0.6,
            rasterized=True,
        )
    ax.set_yticks(range(len(order)), names[::-1])
    ax.axvline(0, c="grey", lw=0.8)
    ax.set(xlabel="TreeSHAP contribution (log-odds); colour: low -> high feature value", title="SHAP values")
    out["shap_beeswarm"] = _fig_to_b64(fig)

    gain = bundle.booster.get_score(importance_type="total_gain") if hasattr(bundle, "booster") else {}
    if gain:
        imp = pd.Series(gain, dtype=float).sort_values(ascending=False).head(top_k)
        fig, ax = _subplots((6, 0.3 * len(imp) + 1))
        ax.barh(list(imp.index[::-1]), imp.to_numpy()[::-1])
        ax.set(xlabel="total gain", title="XGBoost feature importance")
        out["feature_importance"] = _fig_to_b64(fig)

    if fairness_frames:
        n = len(fairness_frames)
        fig, axes = _subplots((4 * n + 1, 3.2), ncols=n)
        axes = np.atleast_1d(axes)
        for ax, (attr, frame) in zip(axes, fairness_frames.items(), strict=True):
            idx = np.arange(len(frame))
            ax.bar(idx - 0.2, frame["selection_rate"], width=0.4, label="decline rate")
            ax.bar(idx + 0.2, frame["tpr"].fillna(0), width=0.4, label="TPR")
            ax.set_xticks(idx, [str(g) for g in frame.index], rotation=30, ha="right")
            ax.set_title(attr)
        axes[-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.suptitle("Fairness by group (decline = positive)")
        out["fairness"] = _fig_to_b64(fig)
    return out


def _gate_table(report: GateReport) -> pd.DataFrame:
    """One row per gate with its status word (pass, FAIL by how much, not applicable, not assessed)."""

    def result(g: Gate) -> str:
        if g.status == "fail":
            return f"FAIL (by {g.margin:.4g})" if not math.isnan(g.value) else "FAIL"
        return g.verdict

    return pd.DataFrame(
        [
            {
                "gate": g.name,
                "value": g.value,
                "required": f"{g.op} {g.threshold:.4g}",
                "result": result(g),
                "detail": g.detail,
            }
            for g in report.gates
        ]
    )


def _verdict(report: GateReport) -> str:
    if not report.passed:
        return f"FAILED {len(report.failed)} of {len(report.gates)} gates"
    if all(g.status == "pass" for g in report.gates):
        return "PASSED all gates"
    return f"PASSED all gates that could be judged ({report.counts()})"


def _interval(value: float, low: float, high: float) -> str:
    if math.isnan(value):
        return "not assessed"
    if math.isnan(low) or math.isnan(high):
        return f"{value:.3g}"
    return f"{value:.3g} [{low:.3g}, {high:.3g}]"


def _decision_policy(m: Any, report: GateReport) -> _Section:
    """The operating point: policy, thresholds, and what they do on the test set."""
    section = _Section("Decision policy")
    thresholds = _get(m, "thresholds", None)
    op = report.operating_point
    approve = _get(thresholds, "approve_below_pd", op.get("approve_below_pd", float("nan")))
    decline = _get(thresholds, "decline_at_or_above_pd", op.get("decline_at_or_above_pd", float("nan")))
    rule = _get(thresholds, "rule", "") or op.get("rule", "") or "not recorded"
    section.blocks.append(
        f"Approve when PD < {_fmt(float(approve))}; refer to an underwriter (review) when "
        f"{_fmt(float(approve))} <= PD < {_fmt(float(decline))}; decline when PD >= {_fmt(float(decline))}."
    )
    section.blocks.append(f"How the thresholds were set: {rule}.")
    metrics = report.metrics
    rows = [
        ("approve rate (test)", metrics.get("approve_rate")),
        ("review rate (test)", metrics.get("review_rate")),
        ("decline rate (test)", metrics.get("decline_rate")),
        ("false-positive rate: non-defaulters declined", metrics.get("fpr")),
        ("recall: defaulters declined", metrics.get("recall")),
        ("precision: declined who defaulted", metrics.get("precision")),
    ]
    section.blocks.append(
        _Table(pd.DataFrame([{"at the operating point": k, "value": v} for k, v in rows if v is not None]))
    )
    return section


def _build_sections(
    bundle: Any,
    report: GateReport,
    fairness_frames: dict[str, pd.DataFrame],
    test_df: pd.DataFrame,
    y: np.ndarray | None,
    contrib: np.ndarray,
    features: list[str],
    *,
    owner: str,
    intended_use: str,
    out_of_scope: str,
    monitoring_plan: str,
    lineage: dict[str, Any],
    model_version: str | None,
    top_k: int,
    dataset: dict[str, Any] | None = None,
) -> tuple[str, list[_Section]]:
    m = bundle.manifest
    name = _get(m, "model_name", "model")
    title = f"Model card: {name}" + (f" v{model_version}" if model_version else "")
    directions = dict(_get(m, "directions", {}) or {})
    reasons = dict(_get(m, "reasons", {}) or {})
    protected = list(_get(m, "protected", []) or [])
    verdict = _verdict(report)
    monotone = sorted(f for f, d in directions.items() if int(d) != 0)
    constraints = (
        f"monotone constraints on {len(monotone)} of {len(features)} features"
        if monotone
        else "no monotone constraints (no feature declares a direction)"
    )

    overview = _Section("Overview")
    overview.blocks.append(
        f"Gradient-boosted trees (XGBoost) with {constraints} and isotonic calibration, predicting "
        f"the probability of default (PD) from {len(features)} features of the feature service "
        f"`{_get(m, 'feature_service', 'n/a')}`. Validation verdict: **{verdict}**."
    )
    overview.blocks.append(
        _Bullets(
            [
                f"Model name: {name}" + (f", version {model_version}" if model_version else ""),
                f"Created: {_get(m, 'created_at', 'n/a')}",
                f"Target: `{_get(m, 'target', 'n/a')}` ({_target_meaning(dataset)})",
                f"Decision thresholds: {_fmt(_get(m, 'thresholds', 'n/a'))}",
                f"Score scaling: {_fmt(_get(m, 'score_scaling', 'n/a'))}",
                f"Library versions: {_fmt(_get(m, 'library_versions', 'n/a'))}",
            ]
        )
    )

    risk = _Section("Model risk management")
    risk.blocks.append(
        _Bullets(
            [
                f"Intended use: {_intended_use(intended_use, dataset)}",
                f"Out of scope: {out_of_scope}",
                f"Owner: {owner}",
                "Validation: automated gates on a held-out test set (below); a model failing any gate is not "
                "registered for deployment. New versions enter as `challenger` and become `champion` only "
                "through an explicit, recorded promotion after canary analysis.",
                f"Monitoring plan: {monitoring_plan}",
            ]
        )
    )
    risk.blocks.append("Validation results:")
    risk.blocks.append(_Table(_gate_table(report)))

    data = _Section("Training data")
    lineage_items = _dataset_items(dataset)
    lineage_items += [f"Data version: `{_get(m, 'data_version', 'n/a')}`"]
    lineage_items += [f"{k}: `{v}`" for k, v in lineage.items()]
    reference = getattr(bundle, "reference", None)
    if reference is not None:
        lineage_items.append(
            f"Reference sample for drift monitoring: {len(reference)} rows shipped in the bundle"
        )
    lineage_items.append(
        f"Test set: {len(test_df)} rows"
        + (f", observed default rate {float(np.mean(y)):.2%}" if y is not None and len(y) else "")
    )
    if protected and not (dataset and "protected_lineage" in dataset):
        lineage_items.append(
            f"Protected attributes ({', '.join(protected)}) ride along for fairness testing and are never "
            "model inputs."
        )
    data.blocks.append(_Bullets(lineage_items))

    perf = _Section("Performance")
    keys = [
        "auc",
        "gini",
        "ks",
        "brier",
        "fpr",
        "tpr",
        "precision",
        "recall",
        "f1",
        "decline_rate",
        "default_rate",
    ]
    perf.blocks.append(
        _Table(pd.DataFrame([{"metric": k, "value": report.metrics[k]} for k in keys if k in report.metrics]))
    )
    manifest_metrics = _get(m, "metrics", None)
    if manifest_metrics:
        perf.blocks.append(f"Metrics recorded at training time: {_fmt(dict(manifest_metrics))}")
    perf.blocks += [
        _Image("roc", "ROC curve on the test set"),
        _Image("calibration", "Calibration by PD decile"),
        _Image("score_distribution", "Score distribution by outcome"),
    ]

    explain = _Section("Explainability")
    mean_abs = np.abs(contrib).mean(axis=0)
    order = np.argsort(mean_abs)[::-1][:top_k]
    explain.blocks.append(
        "Per-decision explanations are exact TreeSHAP contributions; adverse-action reason codes are the "
        "features that raise PD most for that applicant."
    )
    explain.blocks.append(
        _Table(
            pd.DataFrame(
                [
                    {
                        "feature": features[i],
                        "mean abs contribution": float(mean_abs[i]),
                        "direction": {1: "+ (higher = riskier)", -1: "- (higher = safer)"}.get(
                            int(directions.get(features[i], 0)), "unconstrained"
                        ),
                        "reason text": reasons.get(features[i], ""),
                    }
                    for i in order
                ]
            )
        )
    )
    explain.blocks += [
        _Image("shap_bar", "Mean |TreeSHAP contribution|"),
        _Image("shap_beeswarm", "TreeSHAP values per applicant"),
        _Image("feature_importance", "XGBoost total gain"),
    ]

    fair = _Section("Fairness")
    if not report.fairness:
        fair.blocks.append(
            "**Not assessed.** No protected attribute was assessed for this model (the dataset declares "
            "none, or none had groups large enough): nothing here shows the model is fair."
        )
    fair.blocks.append(
        "Decline is the positive prediction. Demographic parity difference = spread of decline rates between "
        "groups; equal opportunity difference = spread of true-positive rates (share of actual defaulters "
        "declined)."
    )
    fair.blocks.append(
        "Adverse impact ratio = each group's approval rate (outright approve) over the most-approved "
        "group's; below the four-fifths line it fails. A measure fails when its point estimate is beyond its "
        "threshold; the 95% bootstrap interval is shown beside it in brackets. Groups with too few rows or "
        "defaulters are not assessed."
    )
    if report.unassessed:
        fair.blocks.append(
            "**Fairness not (fully) assessed**: "
            + "; ".join(f"{a}: {why}" for a, why in report.unassessed.items())
            + "."
        )
    status = {g.name: g.verdict for g in report.gates}
    rows = []
    for attr, result in report.fairness.items():
        dp, eo, air = result.demographic_parity, result.equal_opportunity, result.adverse_impact
        rows.append(
            {
                "attribute": attr,
                "demographic parity diff": _interval(dp.value, dp.ci_low, dp.ci_high),
                "result (DP)": status.get(f"demographic_parity_difference.{attr}", "n/a"),
                "equal opportunity diff": _interval(eo.value, eo.ci_low, eo.ci_high),
                "result (EO)": status.get(f"equal_opportunity_difference.{attr}", "n/a"),
                "adverse impact ratio": _interval(air.value, air.ci_low, air.ci_high),
                "result (AIR)": status.get(f"adverse_impact_ratio.{attr}", "n/a"),
                "groups not assessed": ", ".join(
                    f"{g} ({why})" for g, why in result.exclusion_reasons.items()
                )
                or "none",
            }
        )
    if rows:
        fair.blocks.append(_Table(pd.DataFrame(rows)))
    for attr, frame in fairness_frames.items():
        fair.blocks.append(f"By {attr}:")
        table = frame.reset_index().rename(columns={frame.index.name or "index": "group"})
        reasons = report.fairness[attr].exclusion_reasons if attr in report.fairness else {}
        table["assessed"] = [
            ("not assessed: " + reasons[str(g)]) if str(g) in reasons else "yes" for g in table["group"]
        ]
        fair.blocks.append(_Table(table))
    fair.blocks.append(_Image("fairness", "Decline rate and TPR by group"))

    limits = _Section("Limitations")
    limit_items = [
        "Validated on a single held-out test set drawn from the training population; performance under "
        "population drift (e.g. a recession, a new channel) is unknown until monitored outcomes arrive.",
        "Defaults are observed only for approved applicants in real portfolios (no reject inference).",
        "Monotonicity is guaranteed only for features with a declared direction; others may be non-monotone.",
        "Calibration is isotonic, fitted on the validation set: PDs outside the observed range are clipped.",
    ]
    small = [f"{a}: {', '.join(r.excluded_groups)}" for a, r in report.fairness.items() if r.excluded_groups]
    if small:
        limit_items.append("Groups too small to assess fairness reliably: " + "; ".join(small) + ".")
    limit_items += list(report.notes)
    limit_items += [f"Failed gate: {g.describe()}" for g in report.failed]
    limits.blocks.append(_Bullets(limit_items))

    ethics = _Section("Ethical considerations")
    ethics.blocks.append(
        _Bullets(
            [
                (
                    "Protected attributes and the columns they are derived from are excluded from the "
                    "inputs, but other features can act as proxies; fairness is therefore measured on "
                    f"outcomes, per protected attribute, and gated (here: {', '.join(report.fairness)})."
                    if report.fairness
                    else "No protected attribute was assessed, so fairness was neither measured nor gated: "
                    "the model may treat groups differently without this card showing it."
                ),
                "Every decline carries plain-language reason codes so the applicant can be told why (adverse "
                "action notice) and can contest the decision.",
                "Applications in the review band go to a human underwriter; the model supports, not "
                "replaces, the credit decision.",
                "Every prediction, its inputs and explanation are written to a tamper-evident audit log.",
            ]
        )
    )
    policy = _decision_policy(m, report)
    return title, [overview, risk, data, perf, policy, explain, fair, limits, ethics]


def _target_meaning(dataset: dict[str, Any] | None) -> str:
    if dataset and dataset.get("target_meaning"):
        return str(dataset["target_meaning"])
    return "1 = default within 12 months"


def _intended_use(intended_use: str, dataset: dict[str, Any] | None) -> str:
    """The dataset's own purpose unless the caller gave a use other than the synthetic world's default."""
    if intended_use == DEFAULT_INTENDED_USE and dataset and dataset.get("purpose"):
        return str(dataset["purpose"])
    return intended_use


def _dataset_items(dataset: dict[str, Any] | None) -> list[str]:
    """Bullets describing the training dataset: name, description, target, protected lineage, opt-ins."""
    if not dataset:
        return []
    items = [
        f"Dataset: **{dataset.get('name', 'n/a')}**"
        + (f". {dataset['description']}" if dataset.get("description") else "")
    ]
    if dataset.get("target"):
        items.append(
            f"Target: `{dataset['target']}`, positive value {dataset.get('positive_value')!r} "
            f"({_target_meaning(dataset)})"
        )
    lineage = dict(dataset.get("protected_lineage") or {})
    if lineage:
        parts = [
            f"`{attr}`" + (f" (from {', '.join(f'`{c}`' for c in cols[1:])})" if len(cols) > 1 else "")
            for attr, cols in lineage.items()
        ]
        items.append(
            f"Protected attributes: {', '.join(parts)}. They and the columns they are derived from ride "
            "along for fairness testing and are never model inputs."
        )
    elif "protected_lineage" in dataset:
        items.append("Protected attributes: none declared by the dataset spec, so fairness was not assessed.")
    for feature, why in dict(dataset.get("justifications") or {}).items():
        items.append(
            f"Feature `{feature}` is used despite standing for a prohibited basis. Justification: {why}"
        )
    return items


def _md_table(frame: pd.DataFrame) -> str:
    cols = [str(c) for c in frame.columns]
    lines = [
        "| " + " | ".join(c.replace("|", "\\|") for c in cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
    ]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def _md_inline(text: str) -> str:
    """Markdown-lite (``**bold**``, `` `code` ``) to HTML, after escaping."""
    out = html.escape(text)
    parts = out.split("**")
    out = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _to_markdown(
    title: str, sections: Sequence[_Section], images: dict[str, str], image_links: dict[str, str]
) -> str:
    lines = [f"# {title}", "", f"_Generated {datetime.now(UTC).isoformat(timespec='seconds')}_", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, str):
                lines += [block, ""]
            elif isinstance(block, _Bullets):
                lines += [f"- {item}" for item in block.items] + [""]
            elif isinstance(block, _Table):
                lines += [_md_table(block.frame), ""]
            elif isinstance(block, _Image) and block.key in images and block.key in image_links:
                lines += [f"![{block.caption}]({image_links[block.key]})", ""]
    return "\n".join(lines).rstrip() + "\n"


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:3px 8px;"
    "font-size:.9em;text-align:left}th{background:#f3f3f3}figure{display:inline-block;margin:.5em}"
    "figcaption{font-size:.85em;color:#555}code{background:#f3f3f3;padding:0 3px}"
)


def _to_html(title: str, sections: Sequence[_Section], images: dict[str, str]) -> str:
    out = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p><em>Generated {datetime.now(UTC).isoformat(timespec='seconds')}</em></p>",
    ]
    for section in sections:
        out.append(f"<h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, str):
                out.append(f"<p>{_md_inline(block)}</p>")
            elif isinstance(block, _Bullets):
                out.append("<ul>" + "".join(f"<li>{_md_inline(i)}</li>" for i in block.items) + "</ul>")
            elif isinstance(block, _Table):
                head = "".join(f"<th>{html.escape(str(c))}</th>" for c in block.frame.columns)
                body = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
                    for row in block.frame.itertuples(index=False)
                )
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif isinstance(block, _Image) and block.key in images:
                out.append(
                    f'<figure><img alt="{html.escape(block.caption)}" '
                    f'src="data:image/png;base64,{images[block.key]}">'
                    f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
                )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render(
    bundle: Any,
    gate_report: GateReport,
    fairness_frames: dict[str, pd.DataFrame] | None = None,
    test_df: pd.DataFrame | None = None,
    *,
    target: str | None = None,
    owner: str = "Credit Risk Modelling team",
    intended_use: str = DEFAULT_INTENDED_USE,
    out_of_scope: str = DEFAULT_OUT_OF_SCOPE,
    monitoring_plan: str = DEFAULT_MONITORING_PLAN,
    lineage: dict[str, Any] | None = None,
    model_version: str | None = None,
    dataset: dict[str, Any] | None = None,
    image_dir: str | Path | None = None,
    max_rows: int = 2000,
    top_k: int = 15,
    baselines: Mapping[str, Mapping[str, float | None]] | None = None,
) -> tuple[str, str]:
    """Render the model card.

    Args:
        bundle: the model bundle (:class:`creditops.artifact.Bundle`).
        gate_report: result of :func:`creditops.governance.gates.evaluate_gates` on ``test_df``.
        fairness_frames: protected attribute -> per-group frame; default ``gate_report.fairness_frames``.
        test_df: the held-out frame (features + target); default: the bundle's reference sample (no outcome
            plots then).
        target: target column; default the manifest's.
        owner: accountable owner (model risk management).
        intended_use: what the model may be used for.
        out_of_scope: what it must not be used for.
        monitoring_plan: how the model is watched in production.
        lineage: e.g. data_version, feature_service, run_id (shown under training data).
        model_version: registry version, when known.
        dataset: what the model was trained on (:func:`creditops.data.ingest.describe_source`): name,
            description, purpose (replaces the default intended use), target meaning, protected lineage and
            justified opt-in features.
        image_dir: when given, every plot is also written there as ``<name>.png`` and the Markdown links it
            as ``<image_dir name>/<name>.png`` (so keep the Markdown in ``image_dir``'s parent); otherwise the
            Markdown omits the plots.
        max_rows: the test frame is sampled down to this many rows for plots (keeps rendering fast).
        top_k: features shown in the explainability plots and table.
        baselines: model name -> test metrics (``auc``, ``gini``, ``ks``, ``brier``, ``cv_auc_mean``,
            ``cv_auc_sd``), the tuned model first (:func:`creditops.training.workflow.comparison`); shown as a
            "Baselines" section after "Performance".

    Returns:
        (markdown, html); the HTML embeds every plot as a base64 PNG.
    """
    m = bundle.manifest
    features = list(_get(m, "features"))
    target = target or _get(m, "target", None)
    frames = fairness_frames if fairness_frames is not None else gate_report.fairness_frames
    df = test_df if test_df is not None else getattr(bundle, "reference", pd.DataFrame(columns=features))
    if len(df) > max_rows:
        df = df.sample(max_rows, random_state=0)
    df = df.reset_index(drop=True)
    X = df[features]
    y = df[target].astype(int).to_numpy() if target and target in df.columns else None
    pd_ = np.asarray(bundle.predict_pd(X), dtype=float) if len(X) else np.array([])
    contrib = _contributions(bundle, X, features) if len(X) else np.zeros((0, len(features)))
    images = _plots(bundle, X, y, pd_, contrib, features, frames, top_k) if len(X) else {}
    image_links: dict[str, str] = {}
    if image_dir is not None:
        image_dir = Path(image_dir)
        image_dir.mkdir(parents=True, exist_ok=True)
        for key, b64 in images.items():
            (image_dir / f"{key}.png").write_bytes(base64.b64decode(b64))
            image_links[key] = f"{image_dir.name}/{key}.png"
    title, sections = _build_sections(
        bundle,
        gate_report,
        frames,
        df,
        y,
        contrib,
        features,
        owner=owner,
        intended_use=intended_use,
        out_of_scope=out_of_scope,
        monitoring_plan=monitoring_plan,
        lineage=lineage or {},
        model_version=model_version,
        top_k=top_k,
        dataset=dataset,
    )
    sections = _with_baselines(sections, baselines or {})
    return _to_markdown(title, sections, images, image_links), _to_html(title, sections, images)


def _with_baselines(
    sections: list[_Section], baselines: Mapping[str, Mapping[str, float | None]]
) -> list[_Section]:
    """Insert the side-by-side table of the tuned model and its baselines after the Performance section."""
    if not baselines:
        return sections
    columns = ["auc", "gini", "ks", "brier", "cv_auc_mean", "cv_auc_sd"]
    table = pd.DataFrame(
        [[_num_or_nan(row.get(c)) for c in columns] for row in baselines.values()],
        index=pd.Index(list(baselines), name="model"),
        columns=["AUC", "Gini", "KS", "Brier", "CV AUC mean", "CV AUC sd"],
    ).round(4)
    section = _Section("Baselines")
    section.blocks.append(
        "The tuned model beside a logistic regression (standardised inputs, one-hot categoricals) and "
        "XGBoost with default parameters, fitted on the same training split and scored on the same test "
        "frame; the cross-validated AUC uses the same folds of train + validation for every model."
    )
    section.blocks.append(_Table(table.reset_index()))
    names = [s.title for s in sections]
    at = names.index("Performance") + 1 if "Performance" in names else len(sections)
    return [*sections[:at], section, *sections[at:]]


def _num_or_nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def write(out_dir: str | Path, markdown: str, html_text: str, stem: str = "model_card") -> list[Path]:
    """Write the card as ``<stem>.md`` and ``<stem>.html`` in ``out_dir``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md_path, html_path = out / f"{stem}.md", out / f"{stem}.html"
    md_path.write_text(markdown, encoding="utf-8")
    html_path.write_text(html_text, encoding="utf-8")
    return [md_path, html_path]
