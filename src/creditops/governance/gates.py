"""Validation gates a model must pass before it may be registered for deployment.

Every gate is a :class:`Gate` (name, measured value, threshold, comparison, status). Its status is one of:

* ``pass`` / ``fail``: the value was measured and judged against the threshold;
* ``not_applicable``: there is nothing to judge (no monotone direction declared, no baseline or raw-score AUC
  in the training evidence, no numeric input to perturb); the value is NaN, never a fake ``0.0`` pass;
* ``not_assessed``: there is something to judge but too little data (a fairness measure with fewer than two
  groups of enough support). It lets the model through unless ``GatesConfig.fairness_fail_unassessed``, and
  :meth:`GateReport.summary` and the model card always say which protected attribute was not assessed.

The gates, in report order:

* ``auc`` (>= ``min_auc``), by this rule: the judged value is the lowest of the available estimates among

  - the mean cross-validated AUC (``GateEvidence.cv_auc``, when the training workflow supplies it), and
  - the test AUC, when the test set is large enough (at least ``auc_small_test_class_size`` defaulters and
    non-defaulters); on a smaller test set its point estimate is never judged alone: it is replaced by the
    lower bound of its DeLong confidence interval (``auc_confidence``) when there is no CV estimate, and
    left to the CV estimate otherwise.

  So one lucky small split cannot carry the gate (test AUC 0.806 with a CV AUC of 0.742 fails 0.80), and the
  interval and the fold AUCs are printed in the gate's detail.
* ``fpr_at_threshold`` (<= ``max_fpr``) and ``recall_at_threshold`` (>= ``min_recall``): the decline
  decision at the bundle's operating point (its thresholds, set by the policy of
  :class:`~creditops.config.ScoringConfig` on the validation split) judged on the test set: the share of
  non-defaulters declined, and the share of defaulters caught. Precision and the approve / review / decline
  shares are in the detail and the metrics. A target-FPR policy keeps the first near its target on new
  data, so the second is what a weak model fails; a PD cut-off policy fails the first when the model's PDs are
  too high (miscalibrated).
* ``baseline_not_worse`` (>= ``-baseline_tolerance``): model AUC minus the best baseline's
  (``GateEvidence.baselines``), on the same estimate for both: CV means when all are known, else the AUC on
  the same test frame.
* ``calibration_ranking`` (<= ``max_calibration_auc_change``): |test AUC of the calibrated PD - test AUC of
  the raw score|; the raw AUC comes from ``GateEvidence.raw_test_auc`` or, failing that, the bundle's
  ``predict_raw``. An isotonic step function ties whole blocks of applicants and loses ranking.
* fairness (fairlearn, :mod:`creditops.governance.fairness`), per protected attribute: the demographic parity
  difference (spread of decline rates), the equal opportunity difference (spread of true-positive rates),
  each <= its threshold, and the adverse impact ratio (lowest group approval rate over the highest) >=
  ``min_adverse_impact_ratio`` (0.80, the four-fifths screen). The point estimate decides: a disparity above
  its threshold fails. Its 95% stratified bootstrap interval is reported beside it (``GateReport.metrics``
  ``<gate>.ci_low`` / ``<gate>.ci_high`` and the detail), so a reader sees how firmly the test set supports
  the verdict. Groups with fewer than ``fairness_min_group_size`` rows (or, for equal opportunity,
  ``fairness_min_group_defaulters`` defaulters) are not assessed and named; a measure left with fewer than
  two groups is ``not_assessed``.
* ``perturbation_shift`` (<= ``max_perturbation_shift``): mean |change in PD| under small random noise on the
  numeric inputs.
* ``adversarial_monotone`` and ``monotonicity`` (<= 0): nudges along each declared monotone direction never
  lower the PD, and on a grid over each declared feature PD moves only in the declared direction.

The retraining pipeline adds one more, :func:`champion_gate`:

* ``champion_not_worse`` (>= ``-champion_tolerance``): the challenger's AUC minus the current champion's,
  both scored on the same recent hold-out; ``not_applicable`` when there is no champion, ``not_assessed``
  (blocking) when the hold-out lacks an input the champion needs.

A failed gate is never fatal here: the caller (registry, pipeline) decides, and :meth:`GateReport.summary`
says which gate failed, by how much, and what was not assessed or not applicable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata
from sklearn.metrics import (
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from creditops.config import GatesConfig
from creditops.errors import DataError
from creditops.governance.fairness import AdverseImpact, Disparity, FairnessResult, assess_fairness

# PD changes smaller than this are float noise (isotonic calibration and xgboost's float32 margins), not a
# violation of a monotone direction.
MONOTONE_TOLERANCE = 1e-9


class BundleLike(Protocol):
    """What the gates need from :class:`creditops.artifact.Bundle`."""

    manifest: Any

    def predict_pd(self, X: pd.DataFrame) -> np.ndarray:  # noqa: D102
        ...

    def decide(self, pd_: np.ndarray) -> Any:  # noqa: D102
        ...


GateStatus = Literal["pass", "fail", "not_applicable", "not_assessed"]
STATUSES: tuple[GateStatus, ...] = ("pass", "fail", "not_applicable", "not_assessed")


@dataclass(frozen=True)
class GateEvidence:
    """What training knows that the test set alone cannot show (filled by the training workflow).

    Attributes:
        cv_auc: per-fold AUCs of the final model's k-fold cross-validation.
        raw_test_auc: AUC of the uncalibrated model score on the same test frame.
        baselines: name -> metrics on the same test frame: ``auc``, ``gini``, ``ks``, ``brier`` and optionally
            ``cv_auc_mean``, ``cv_auc_sd``; names such as ``logistic_regression``, ``xgboost_default``.
    """

    cv_auc: tuple[float, ...] = ()
    raw_test_auc: float = float("nan")
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (NaN becomes None)."""
        return {
            "cv_auc": [_clean(v) for v in self.cv_auc],
            "raw_test_auc": _clean(self.raw_test_auc),
            "baselines": {n: {k: _clean(v) for k, v in m.items()} for n, m in self.baselines.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GateEvidence:
        """Inverse of :meth:`to_dict`."""
        data = data or {}
        return cls(
            cv_auc=tuple(_num(v) for v in data.get("cv_auc", [])),
            raw_test_auc=_num(data.get("raw_test_auc")),
            baselines={  # numbers only: a baseline row may carry labels (e.g. its model family) too
                n: {k: _num(v) for k, v in m.items() if v is None or isinstance(v, int | float)}
                for n, m in (data.get("baselines") or {}).items()
            },
        )


def _clean(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def _num(x: float | None) -> float:
    return float("nan") if x is None else float(x)


@dataclass(frozen=True)
class Gate:
    """One check: ``value op threshold`` must hold.

    Attributes:
        name: e.g. ``auc`` or ``demographic_parity_difference.sex``.
        value: the measured value (NaN when not applicable or not assessed).
        threshold: the configured limit.
        op: ``>=`` (value must reach the threshold) or ``<=`` (value must stay under it).
        status: ``pass``, ``fail``, ``not_applicable`` (nothing to judge, e.g. no declared monotone direction)
            or ``not_assessed`` (something to judge, but too little data to judge it).
        ci_low: lower bound of the value's confidence interval (NaN when the gate has none).
        ci_high: upper bound of the value's confidence interval.
        detail: what a reader needs beyond the numbers (interval, groups concerned, why it passed or failed).
        unassessed_blocks: a ``not_assessed`` gate counts as failed
            (``GatesConfig.fairness_fail_unassessed``).
    """

    name: str
    value: float
    threshold: float
    op: Literal[">=", "<="]
    status: GateStatus
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    detail: str = ""
    unassessed_blocks: bool = False

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"gate status must be one of {STATUSES}, got {self.status!r}")

    @classmethod
    def check(
        cls, name: str, value: float, threshold: float, op: Literal[">=", "<="], detail: str = ""
    ) -> Gate:
        """Build a gate, deciding pass / fail (a NaN value never passes)."""
        value = float(value)
        ok = (value >= threshold) if op == ">=" else (value <= threshold)
        status: GateStatus = "pass" if ok and not math.isnan(value) else "fail"
        return cls(name, value, float(threshold), op, status, detail=detail)

    @classmethod
    def not_applicable(cls, name: str, threshold: float, op: Literal[">=", "<="], why: str) -> Gate:
        """A gate with nothing to judge (never a fake pass: its value is NaN and ``why`` says why)."""
        return cls(
            name, float("nan"), float(threshold), op, "not_applicable", detail=f"not applicable: {why}"
        )

    def with_interval(self, low: float, high: float) -> Gate:
        """The same gate with the value's confidence interval attached."""
        return replace(self, ci_low=float(low), ci_high=float(high))

    @property
    def passed(self) -> bool:
        """Whether the gate lets the model through (pass and not_applicable; not_assessed unless blocking)."""
        if self.status == "not_assessed":
            return not self.unassessed_blocks
        return self.status in ("pass", "not_applicable")

    @property
    def margin(self) -> float:
        """How far the value is on the wrong side of the threshold (0 unless failed on a measured value)."""
        if self.status != "fail" or math.isnan(self.value):
            return 0.0
        return abs(self.value - self.threshold)

    @property
    def verdict(self) -> str:
        """The status word as printed: ``pass``, ``FAIL``, ``not applicable`` or ``not assessed``."""
        if self.status == "not_assessed" and self.unassessed_blocks:
            return "NOT ASSESSED (blocking)"
        words = {"pass": "pass", "fail": "FAIL", "not_applicable": "not applicable"}  # nosec B105  # statuses
        return words.get(self.status, "not assessed")

    def describe(self) -> str:
        """One line: name, measured value, required threshold, status (with the shortfall), the detail."""
        required = f"required {self.op} {self.threshold:.4g}"
        if self.status in ("not_applicable", "not_assessed"):
            line = f"{self.name}: {self.verdict} ({required})"
        elif self.status == "fail":
            by = f" by {self.margin:.4g}" if not math.isnan(self.value) else ""
            line = f"{self.name}: {self.value:.4g} ({required}) FAILED{by}"
        else:
            line = f"{self.name}: {self.value:.4g} ({required}) pass"
        return f"{line}; {self.detail}" if self.detail else line


@dataclass
class GateReport:
    """Result of :func:`evaluate_gates`.

    Attributes:
        passed: every gate let the model through (see :attr:`Gate.passed`).
        gates: every gate, in evaluation order.
        metrics: all measured numbers (performance, fairness, stability), flat ``name -> float``.
        fairness: protected attribute -> fairness result (with the per-group frame for the model card).
        notes: caveats worth a reader's attention (e.g. declared protected attributes absent from the data).
        unassessed: protected attribute -> why (part of) its fairness was not assessed (absent from the test
            data, or too few rows / defaulters per group); printed by :meth:`summary` even when all passed.
        operating_point: how the decision thresholds were set (the manifest's ``Thresholds.rule``) and the
            thresholds themselves, for the card and the summary.
    """

    passed: bool
    gates: list[Gate]
    metrics: dict[str, float]
    fairness: dict[str, FairnessResult] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unassessed: dict[str, str] = field(default_factory=dict)
    operating_point: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[Gate]:
        """The gates that did not let the model through."""
        return [g for g in self.gates if not g.passed]

    def by_status(self, status: GateStatus) -> list[Gate]:
        """The gates with this status."""
        return [g for g in self.gates if g.status == status]

    def gate(self, name: str) -> Gate:
        """The gate called ``name``.

        Raises:
            KeyError: no such gate.
        """
        for g in self.gates:
            if g.name == name:
                return g
        raise KeyError(f"no gate named {name!r}; gates: {[g.name for g in self.gates]}")

    @property
    def fairness_frames(self) -> dict[str, pd.DataFrame]:
        """Protected attribute -> per-group metric frame (selection_rate, tpr, fpr, auc, count)."""
        return {name: result.by_group for name, result in self.fairness.items()}

    def counts(self) -> str:
        """E.g. ``9 pass, 1 fail, 2 not applicable, 1 not assessed`` (statuses that occur only)."""
        words = {  # nosec B105  # status words, not passwords
            "pass": "pass",
            "fail": "fail",
            "not_applicable": "not applicable",
            "not_assessed": "not assessed",
        }
        parts = [f"{len(self.by_status(s))} {words[s]}" for s in STATUSES if self.by_status(s)]
        return ", ".join(parts) or "no gates"

    def summary(self) -> str:
        """Human-readable verdict: each failed gate with its value and threshold, then what was not assessed.

        The unassessed protected attributes and the not-applicable gates are listed even when every gate
        passed, so a reader never takes "passed" for "fairness was measured".
        """
        if self.passed and all(g.status == "pass" for g in self.gates):
            lines = [f"all {len(self.gates)} gates passed"]
        elif self.passed:
            lines = [f"passed: none of {len(self.gates)} gates failed ({self.counts()})"]
        else:
            lines = [f"{len(self.failed)} of {len(self.gates)} gates failed ({self.counts()}):"]
            lines += [f"  - {g.describe()}" for g in self.failed]
        if self.unassessed:
            lines.append(
                "fairness NOT ASSESSED for: " + "; ".join(f"{a} ({w})" for a, w in self.unassessed.items())
            )
        skipped = [g.name for g in self.gates if g.status == "not_applicable"]
        if skipped:
            lines.append("not applicable: " + ", ".join(skipped))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (NaN becomes None), logged next to the registered model."""
        return {
            "passed": self.passed,
            "gates": [
                {
                    "name": g.name,
                    "value": _clean(g.value),
                    "threshold": g.threshold,
                    "op": g.op,
                    "status": g.status,
                    "passed": g.passed,
                    "ci_low": _clean(g.ci_low),
                    "ci_high": _clean(g.ci_high),
                    "detail": g.detail,
                    "unassessed_blocks": g.unassessed_blocks,
                }
                for g in self.gates
            ],
            "metrics": {k: _clean(v) for k, v in self.metrics.items()},
            "notes": list(self.notes),
            "unassessed": dict(self.unassessed),
            "operating_point": _json_ready(self.operating_point),
            "fairness": {
                name: {
                    "demographic_parity_difference": _clean(r.demographic_parity_difference),
                    "equal_opportunity_difference": _clean(r.equal_opportunity_difference),
                    "demographic_parity": _disparity_dict(r.demographic_parity),
                    "equal_opportunity": _disparity_dict(r.equal_opportunity),
                    "excluded_groups": r.excluded_groups,
                    "exclusion_reasons": dict(r.exclusion_reasons),
                    "adverse_impact": _json_ready(asdict(r.adverse_impact)),
                    "by_group": {
                        str(group): {k: _clean(v) for k, v in row.items()}
                        for group, row in r.by_group.to_dict(orient="index").items()
                    },
                }
                for name, r in self.fairness.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateReport:
        """Inverse of :meth:`to_dict` (a report travels between pipeline steps as JSON)."""

        def disparity(r: dict[str, Any], key: str, legacy: str) -> Disparity:
            if key not in r:  # a report written before the intervals existed
                return Disparity(_num(r[legacy]), float("nan"), float("nan"), float("nan"))
            d = r[key]
            return Disparity(
                _num(d["value"]),
                _num(d["ci_low"]),
                _num(d["ci_high"]),
                _num(d["confidence"]),
                d["highest"],
                d["lowest"],
                tuple(d["groups"]),
            )

        def impact(d: dict[str, Any] | None) -> AdverseImpact:
            if not d:  # a report written before the impact ratio existed
                return AdverseImpact.not_assessed(float("nan"))
            return AdverseImpact(
                _num(d["value"]),
                _num(d["ci_low"]),
                _num(d["ci_high"]),
                _num(d["confidence"]),
                d.get("reference"),
                d.get("lowest"),
                {k: _num(v) for k, v in (d.get("ratios") or {}).items()},
            )

        def status(g: dict[str, Any]) -> GateStatus:
            if "status" in g:
                return g["status"]
            # a report written before gate statuses existed: a NaN that passed was "not assessed"
            if g["passed"]:
                return "not_assessed" if g["value"] is None else "pass"
            return "fail"

        gates = [
            Gate(
                g["name"],
                _num(g["value"]),
                g["threshold"],
                g["op"],
                status(g),
                _num(g.get("ci_low")),
                _num(g.get("ci_high")),
                g.get("detail", ""),
                bool(g.get("unassessed_blocks", False)),
            )
            for g in data["gates"]
        ]
        fairness = {
            name: FairnessResult(
                attribute=name,
                demographic_parity=disparity(r, "demographic_parity", "demographic_parity_difference"),
                equal_opportunity=disparity(r, "equal_opportunity", "equal_opportunity_difference"),
                by_group=pd.DataFrame.from_dict(r["by_group"], orient="index").astype(float),
                excluded_groups=list(r["excluded_groups"]),
                exclusion_reasons=dict(r.get("exclusion_reasons", {})),
                adverse_impact=impact(r.get("adverse_impact")),
            )
            for name, r in data.get("fairness", {}).items()
        }
        metrics = {k: _num(v) for k, v in data["metrics"].items()}
        return cls(
            data["passed"],
            gates,
            metrics,
            fairness,
            list(data.get("notes", [])),
            dict(data.get("unassessed", {})),
            dict(data.get("operating_point", {})),
        )


def _json_ready(value: Any) -> Any:
    """NaN floats become None, recursively (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float):
        return _clean(value)
    return value


def _disparity_dict(d: Disparity) -> dict[str, Any]:
    def clean(x: float) -> float | None:
        return None if math.isnan(x) else float(x)

    return {
        "value": clean(d.value),
        "ci_low": clean(d.ci_low),
        "ci_high": clean(d.ci_high),
        "confidence": clean(d.confidence),
        "highest": d.highest,
        "lowest": d.lowest,
        "groups": list(d.groups),
    }


def fairness_gate(
    name: str,
    disparity: Disparity,
    threshold: float,
    gates: GatesConfig,
    exclusion_reasons: dict[str, str] | None = None,
) -> Gate:
    """Judge one disparity: its point estimate above ``threshold`` fails; the interval is reported beside it.

    Args:
        name: gate name, e.g. ``equal_opportunity_difference.race``.
        disparity: the point estimate and its confidence interval.
        threshold: the largest acceptable disparity.
        gates: the fairness settings (whether an unmeasurable disparity blocks).
        exclusion_reasons: groups left out of this disparity -> why (named in the gate's detail).

    Returns:
        The gate: ``pass`` / ``fail`` on the point estimate, or ``not_assessed`` (value NaN) when fewer than
        two groups had enough support.
    """
    excluded = "; ".join(f"{g} ({why})" for g, why in (exclusion_reasons or {}).items())
    left_out = f"; not assessed: {excluded}" if excluded else ""
    if not disparity.assessed:
        groups = ", ".join(disparity.groups) or "none"
        detail = f"fewer than two groups with enough support (eligible: {groups}){left_out}"
        return Gate(
            name,
            float("nan"),
            float(threshold),
            "<=",
            "not_assessed",
            detail=detail,
            unassessed_blocks=gates.fairness_fail_unassessed,
        )
    interval = f"{disparity.confidence:.0%} CI [{disparity.ci_low:.3g}, {disparity.ci_high:.3g}]"
    groups = f"highest {disparity.highest}, lowest {disparity.lowest}"
    above = disparity.value > threshold
    if above and disparity.ci_low <= threshold:
        why = "above the threshold (the interval reaches below it: more outcomes would firm this up)"
    elif above:
        why = "above the threshold, the whole interval too"
    elif disparity.ci_high > threshold:
        why = "within the threshold (the interval reaches above it)"
    else:
        why = "within the threshold, the whole interval too"
    return Gate(
        name,
        disparity.value,
        float(threshold),
        "<=",
        "fail" if above else "pass",
        disparity.ci_low,
        disparity.ci_high,
        f"{interval}; {groups}; {why}{left_out}",
    )


def adverse_impact_gate(name: str, impact: AdverseImpact, threshold: float, gates: GatesConfig) -> Gate:
    """Judge the adverse impact ratio: a point estimate below ``threshold`` (four-fifths: 0.80) fails."""
    if not impact.assessed:
        return Gate(
            name,
            float("nan"),
            float(threshold),
            ">=",
            "not_assessed",
            detail="fewer than two groups with enough rows, or no group approved at all",
            unassessed_blocks=gates.fairness_fail_unassessed,
        )
    ratios = ", ".join(f"{g} {r:.3g}" for g, r in impact.ratios.items())
    detail = (
        f"{impact.confidence:.0%} CI [{impact.ci_low:.3g}, {impact.ci_high:.3g}]; approval rate of "
        f"{impact.lowest} over {impact.reference} (most approved); ratios: {ratios}"
    )
    return Gate.check(name, impact.value, threshold, ">=", detail=detail).with_interval(
        impact.ci_low, impact.ci_high
    )


def auc_interval(y_true: np.ndarray, score: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """AUC-ROC with DeLong's standard error: (auc, lower, upper), the interval clipped to [0, 1].

    DeLong, DeLong & Clarke-Pearson (1988): the AUC is the mean placement of the defaulters among the
    non-defaulters (ties count half); its variance is that of the placements, per class.
    """
    y = np.asarray(y_true).astype(int)
    score = np.asarray(score, dtype=float)
    pos, neg = score[y == 1], score[y == 0]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        return float("nan"), float("nan"), float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))
    v10 = (ranks[:m] - rankdata(pos)) / n  # share of non-defaulters scored below each defaulter
    v01 = 1.0 - (ranks[m:] - rankdata(neg)) / m  # share of defaulters scored above each non-defaulter
    auc = float(v10.mean())
    se = math.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
    z = float(norm.ppf(0.5 + confidence / 2))
    return auc, max(0.0, auc - z * se), min(1.0, auc + z * se)


def auc_gate(
    y: np.ndarray, pd_: np.ndarray, gates: GatesConfig, evidence: GateEvidence, metrics: dict[str, float]
) -> Gate:
    """The AUC gate by the module's rule: CV estimate, test AUC, or the test AUC's lower bound when small.

    Adds ``auc_ci_low``, ``auc_ci_high``, ``cv_auc_mean``, ``cv_auc_sd`` and ``auc_judged`` to ``metrics``.
    """
    auc, low, high = auc_interval(y, pd_, gates.auc_confidence)
    minority = int(min(np.sum(y == 1), np.sum(y == 0)))
    small = minority < gates.auc_small_test_class_size
    folds = [a for a in evidence.cv_auc if not math.isnan(a)]
    metrics.update({"auc_ci_low": low, "auc_ci_high": high, "auc_test_minority_class": float(minority)})
    estimates: dict[str, float] = {}
    if folds:
        metrics.update({"cv_auc_mean": float(np.mean(folds)), "cv_auc_sd": float(np.std(folds))})
        estimates["cross-validated mean"] = float(np.mean(folds))
    if not small:
        estimates["test AUC"] = metrics["auc"]
    elif not folds:
        estimates["test AUC lower bound"] = low
    judged, value = min(estimates.items(), key=lambda kv: kv[1])
    metrics["auc_judged"] = value
    size = f"{minority} in its smaller class"
    parts = [f"judged: {judged}"]
    if folds:
        parts.append(f"CV AUC {np.mean(folds):.4g} +- {np.std(folds):.3g} over {len(folds)} folds")
    parts.append(
        f"test AUC {metrics['auc']:.4g}, {gates.auc_confidence:.0%} DeLong CI [{low:.4g}, {high:.4g}]"
    )
    parts.append(
        f"test set small ({size} < {gates.auc_small_test_class_size}): its point estimate is not judged"
        if small
        else f"test set {size}"
    )
    gate = Gate.check("auc", value, gates.min_auc, ">=", detail="; ".join(parts))
    return gate.with_interval(low, high) if judged.startswith("test") else gate


def baseline_gate(gates: GatesConfig, evidence: GateEvidence, metrics: dict[str, float]) -> Gate:
    """``baseline_not_worse``: the model's AUC minus the best baseline's must reach ``-baseline_tolerance``.

    Both sides use the same estimate: the CV means when the model's CV AUCs and every baseline's
    ``cv_auc_mean`` are known, else the AUC on the same test frame.
    """
    name, threshold = "baseline_not_worse", -gates.baseline_tolerance
    baselines = {
        b: m for b, m in evidence.baselines.items() if not math.isnan(float(m.get("auc", float("nan"))))
    }
    if not baselines:
        return Gate.not_applicable(name, threshold, ">=", "no baseline model in the training evidence")
    folds = [a for a in evidence.cv_auc if not math.isnan(a)]
    use_cv = bool(folds) and all(
        not math.isnan(float(m.get("cv_auc_mean", float("nan")))) for m in baselines.values()
    )
    key, estimate = ("cv_auc_mean", "CV AUC") if use_cv else ("auc", "test AUC")
    model = float(np.mean(folds)) if use_cv else metrics["auc"]
    scores = {b: float(m[key]) for b, m in baselines.items()}
    best = max(scores, key=lambda b: scores[b])
    for b, v in scores.items():
        metrics[f"baseline.{b}.{key}"] = v
    others = ", ".join(f"{b} {v:.4g}" for b, v in scores.items())
    detail = f"{estimate}: model {model:.4g} vs best baseline {best} {scores[best]:.4g} (baselines: {others})"
    return Gate.check(name, model - scores[best], threshold, ">=", detail=detail)


def calibration_gate(
    bundle: BundleLike,
    X: pd.DataFrame,
    y: np.ndarray,
    gates: GatesConfig,
    evidence: GateEvidence,
    metrics: dict[str, float],
) -> Gate:
    """``calibration_ranking``: |AUC of the calibrated PD - AUC of the raw score| on the test frame.

    The raw AUC comes from the evidence, else from the bundle's ``predict_raw`` when it has one.
    """
    name, threshold = "calibration_ranking", gates.max_calibration_auc_change
    raw_auc, source = evidence.raw_test_auc, "training evidence"
    if math.isnan(raw_auc) and callable(getattr(bundle, "predict_raw", None)) and len(np.unique(y)) == 2:
        raw_auc = float(roc_auc_score(y, np.asarray(bundle.predict_raw(X), dtype=float)))  # type: ignore[attr-defined]
        source = "the bundle's raw score"
    if math.isnan(raw_auc):
        return Gate.not_applicable(name, threshold, "<=", "no raw-score AUC on this test frame")
    metrics["raw_test_auc"] = raw_auc
    change = abs(metrics["auc"] - raw_auc)
    detail = f"calibrated PD AUC {metrics['auc']:.5g} vs raw score AUC {raw_auc:.5g} ({source})"
    return Gate.check(name, change, threshold, "<=", detail=detail)


def declined(bundle: BundleLike, pd_: np.ndarray) -> np.ndarray:
    """1 where the bundle's decision rule declines, else 0 (approve and review are not declines)."""
    return (np.asarray(bundle.decide(np.asarray(pd_)), dtype=object) == "decline").astype(int)


def performance_metrics(y_true: np.ndarray, pd_: np.ndarray, decline: np.ndarray) -> dict[str, float]:
    """Discrimination, calibration and decision metrics on a test set.

    Args:
        y_true: 1 = defaulted.
        pd_: predicted probability of default.
        decline: 1 = declined (positive prediction).

    Returns:
        auc, gini, ks, brier, fpr, tpr, precision, recall, f1, decline_rate, default_rate, n.
    """
    y_true = np.asarray(y_true).astype(int)
    both_classes = len(np.unique(y_true)) == 2
    auc = float(roc_auc_score(y_true, pd_)) if both_classes else float("nan")
    if both_classes:
        fpr_curve, tpr_curve, _ = roc_curve(y_true, pd_)
        ks = float(np.max(tpr_curve - fpr_curve))
    else:
        ks = float("nan")
    negatives = y_true == 0
    positives = y_true == 1
    return {
        "auc": auc,
        "gini": 2 * auc - 1,
        "ks": ks,
        "brier": float(brier_score_loss(y_true, pd_)),
        "fpr": float(decline[negatives].mean()) if negatives.any() else float("nan"),
        "tpr": float(decline[positives].mean()) if positives.any() else float("nan"),
        "precision": float(precision_score(y_true, decline, zero_division=0)),
        "recall": float(recall_score(y_true, decline, zero_division=0)),
        "f1": float(f1_score(y_true, decline, zero_division=0)),
        "decline_rate": float(decline.mean()),
        "default_rate": float(y_true.mean()),
        "n": float(len(y_true)),
    }


def _numeric_features(X: pd.DataFrame) -> list[str]:
    return [
        c for c in X.columns if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])
    ]


def _feature_scales(X: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Per-feature noise unit: the standard deviation, or 1 for a constant column (so it still moves)."""
    std = X[columns].astype(float).std(skipna=True).fillna(0.0)
    return std.where(std > 0, 1.0)


def _integer_features(bundle: BundleLike, X: pd.DataFrame) -> set[str]:
    """Count-like inputs: declared ``int`` in the manifest, or stored with an integer dtype."""
    dtypes = dict(getattr(bundle.manifest, "dtypes", {}) or {})
    return {
        c
        for c in X.columns
        if str(dtypes.get(c, "")).startswith("int") or pd.api.types.is_integer_dtype(X[c])
    }


def perturbation_shift(bundle: BundleLike, X: pd.DataFrame, scale: float, seed: int = 0) -> float:
    """Mean |change in PD| when every numeric input gets Gaussian noise of ``scale`` x its std.

    Integer (count) inputs are rounded back to integers: tree splits sit between integers, so a count nudged
    by 0.001 would cross a split although no real applicant can have 0.999 late payments. Missing values stay
    missing (the model routes them on their own branch).
    """
    rng = np.random.default_rng(seed)
    cols = _numeric_features(X)
    noisy = X.copy()
    noise = rng.standard_normal((len(X), len(cols))) * (scale * _feature_scales(X, cols).to_numpy())
    values = X[cols].astype(float).to_numpy() + noise
    ints = [i for i, c in enumerate(cols) if c in _integer_features(bundle, X)]
    values[:, ints] = np.round(values[:, ints])
    noisy[cols] = values
    base = np.asarray(bundle.predict_pd(X), dtype=float)
    moved = np.asarray(bundle.predict_pd(noisy), dtype=float)
    return float(np.mean(np.abs(moved - base)))


def adversarial_violations(
    bundle: BundleLike, X: pd.DataFrame, directions: dict[str, int], scale: float
) -> tuple[float, float]:
    """Nudge each monotone feature towards more risk; PD must not fall.

    Every declared feature (direction +1 or -1) is moved by ``step x std`` for steps ``scale`` and
    ``10 x scale`` in its risk-raising direction, one feature at a time; integer (count) features move by one
    and by ``max(1, round(10 x scale x std))`` units.

    Returns:
        (share of nudged predictions whose PD fell, largest fall in PD).
    """
    declared = [f for f, d in directions.items() if d != 0 and f in X.columns]
    if not declared:
        return 0.0, 0.0
    scales = _feature_scales(X, declared)
    ints = _integer_features(bundle, X)
    base = np.asarray(bundle.predict_pd(X), dtype=float)
    frames = []
    for feature in declared:
        if feature in ints:
            moves = [1.0, float(max(1, round(10 * scale * scales[feature])))]
        else:
            moves = [scale * scales[feature], 10 * scale * scales[feature]]
        for move in moves:
            nudged = X.copy()
            nudged[feature] = X[feature].astype(float) + directions[feature] * move
            frames.append(nudged)
    moved = np.asarray(bundle.predict_pd(pd.concat(frames, ignore_index=True)), dtype=float)
    falls = np.tile(base, len(frames)) - moved
    bad = falls > MONOTONE_TOLERANCE
    worst = float(falls.max()) if bad.any() else 0.0
    return float(bad.mean()), worst


def monotonicity_violations(
    bundle: BundleLike, X: pd.DataFrame, directions: dict[str, int], grid_points: int = 11
) -> dict[str, float]:
    """Largest move of PD against the declared direction along a grid over each declared feature.

    For every row of ``X`` and every feature with direction +1/-1, the feature is set to each quantile on a
    grid (1st..99th percentile of ``X``) and PD must be non-decreasing (direction +1) or non-increasing (-1).

    Returns:
        feature -> largest violation (0.0 when the direction holds).
    """
    declared = [f for f, d in directions.items() if d != 0 and f in X.columns]
    out: dict[str, float] = {}
    if not declared or X.empty:
        return out
    frames, grids = [], []
    for feature in declared:
        values = X[feature].astype(float).dropna()
        grid = (
            np.unique(np.quantile(values, np.linspace(0.01, 0.99, grid_points)))
            if len(values)
            else np.array([])
        )
        grids.append(grid)
        for value in grid:
            frame = X.copy()
            frame[feature] = value
            frames.append(frame)
    preds = np.asarray(bundle.predict_pd(pd.concat(frames, ignore_index=True)), dtype=float)
    offset = 0
    for feature, grid in zip(declared, grids, strict=True):
        k = len(grid)
        # rows x grid points, PD along the grid for each row (a one-point grid still used its frame)
        curve = preds[offset : offset + k * len(X)].reshape(k, len(X)).T
        offset += k * len(X)
        if k < 2:
            out[feature] = 0.0
            continue
        steps = np.diff(curve, axis=1) * directions[feature]
        worst = float(-steps.min())
        out[feature] = worst if worst > MONOTONE_TOLERANCE else 0.0
    return out


def _unassessed_text(result: FairnessResult, gates_: list[Gate]) -> str | None:
    """Why (part of) one attribute's fairness was not assessed, or None when every measure and group was."""
    missing = [g.name.split(".")[0] for g in gates_ if g.status == "not_assessed"]
    groups = result.not_assessed_groups
    parts = []
    if missing:
        parts.append("not assessed: " + ", ".join(missing))
    if groups:
        parts.append("groups not assessed: " + ", ".join(f"{g} ({why})" for g, why in groups.items()))
    return "; ".join(parts) or None


def evaluate_gates(
    bundle: BundleLike,
    test_df: pd.DataFrame,
    gates: GatesConfig,
    target: str | None = None,
    protected: list[str] | None = None,
    *,
    evidence: GateEvidence | None = None,
    stability_rows: int = 1000,
    monotonicity_rows: int = 50,
    seed: int = 0,
) -> GateReport:
    """Run every gate on a held-out test frame.

    Args:
        bundle: the model bundle (:class:`creditops.artifact.Bundle`).
        test_df: held-out rows with the model features, the target and the protected attributes.
        gates: the thresholds and the fairness settings (group support, bootstrap).
        target: target column (1 = defaulted); default: the manifest's target.
        protected: protected attributes to assess; every one must be in ``test_df`` and is gated. Default: the
            manifest's attributes that ``test_df`` holds (at least one; the absent ones are reported as not
            assessed).
        evidence: what training measured beyond the test set (CV AUCs, raw-score AUC, baselines); the gates
            that need it are ``not_applicable`` without it.
        stability_rows: rows sampled for the perturbation and adversarial checks.
        monotonicity_rows: rows sampled for the monotonicity grid.
        seed: seed for sampling rows, noise and the fairness bootstrap.

    Returns:
        The :class:`GateReport`; ``passed`` is False when any gate failed.

    Raises:
        DataError: the test frame lacks a model feature, the target or a protected attribute.
    """
    evidence = evidence or GateEvidence()
    manifest = bundle.manifest
    features = list(manifest.features)
    directions = {f: int(d) for f, d in dict(manifest.directions).items()}
    target = target or manifest.target
    notes: list[str] = []
    unassessed: dict[str, str] = {}
    if protected is None:
        declared = list(getattr(manifest, "protected", []) or [])
        protected = [c for c in declared if c in test_df.columns]
        absent = [c for c in declared if c not in test_df.columns]
        if declared and not protected:
            raise DataError(f"test frame holds none of the model's protected attributes {declared}")
        for column in absent:
            unassessed[column] = "absent from the test data"
    protected = list(protected)
    if not protected:
        unassessed["(none declared)"] = "no protected attribute was given: fairness was not measured"
    missing = [c for c in [*features, target, *protected] if c not in test_df.columns]
    if missing:
        raise DataError(f"test frame lacks columns needed by the gates: {missing}")
    if test_df.empty:
        raise DataError("test frame is empty: the gates need held-out rows")

    df = test_df.reset_index(drop=True)
    if not df[target].isin([0, 1]).all():
        raise DataError(f"target {target!r} must be 0/1 without missing values in the test frame")
    X = df[features]
    y = df[target].astype(int).to_numpy()
    pd_ = np.asarray(bundle.predict_pd(X), dtype=float)
    decisions = np.asarray(bundle.decide(pd_), dtype=object)
    decline = (decisions == "decline").astype(int)
    approve = (decisions == "approve").astype(int)

    metrics = performance_metrics(y, pd_, decline)
    metrics["approve_rate"] = float(approve.mean())
    metrics["review_rate"] = float(1.0 - approve.mean() - decline.mean())
    operating_point: dict[str, Any] = {}
    thresholds = getattr(manifest, "thresholds", None)
    if thresholds is not None:
        metrics["approve_threshold_pd"] = float(thresholds.approve_below_pd)
        metrics["decline_threshold_pd"] = float(thresholds.decline_at_or_above_pd)
        operating_point = {
            "rule": str(getattr(thresholds, "rule", "") or "not recorded"),
            "approve_below_pd": float(thresholds.approve_below_pd),
            "decline_at_or_above_pd": float(thresholds.decline_at_or_above_pd),
        }
    operating_point.update(
        {k: metrics[k] for k in ("approve_rate", "review_rate", "decline_rate", "fpr", "recall", "precision")}
    )
    at = (
        f"test decisions: approve {metrics['approve_rate']:.1%}, review {metrics['review_rate']:.1%}, "
        f"decline {metrics['decline_rate']:.1%}; precision {metrics['precision']:.3g}"
    )
    report_gates = [
        auc_gate(y, pd_, gates, evidence, metrics),
        Gate.check("fpr_at_threshold", metrics["fpr"], gates.max_fpr, "<=", detail=at),
        Gate.check("recall_at_threshold", metrics["recall"], gates.min_recall, ">=", detail=at),
        baseline_gate(gates, evidence, metrics),
        calibration_gate(bundle, X, y, gates, evidence, metrics),
    ]

    fairness = assess_fairness(
        y,
        decline,
        pd_,
        df[protected],
        protected,
        gates.fairness_min_group_size,
        gates.fairness_min_group_defaulters,
        n_resamples=gates.fairness_bootstrap_resamples,
        confidence=gates.fairness_confidence,
        seed=seed,
        y_approved=approve,
    )
    for attribute, result in fairness.items():
        attribute_gates = []
        for metric, disparity, threshold, excluded in [
            (
                "demographic_parity_difference",
                result.demographic_parity,
                gates.max_demographic_parity_difference,
                result.not_assessed_groups,
            ),
            (
                "equal_opportunity_difference",
                result.equal_opportunity,
                gates.max_equal_opportunity_difference,
                result.exclusion_reasons,
            ),
        ]:
            name = f"{metric}.{attribute}"
            attribute_gates.append(fairness_gate(name, disparity, threshold, gates, excluded))
            metrics.update(
                {
                    name: disparity.value,
                    f"{name}.ci_low": disparity.ci_low,
                    f"{name}.ci_high": disparity.ci_high,
                }
            )
        name = f"adverse_impact_ratio.{attribute}"
        impact = result.adverse_impact
        attribute_gates.append(adverse_impact_gate(name, impact, gates.min_adverse_impact_ratio, gates))
        metrics.update(
            {name: impact.value, f"{name}.ci_low": impact.ci_low, f"{name}.ci_high": impact.ci_high}
        )
        report_gates += attribute_gates
        why = _unassessed_text(result, attribute_gates)
        if why:
            unassessed[attribute] = why

    rng = np.random.default_rng(seed)
    stab = X.iloc[rng.permutation(len(X))[:stability_rows]].reset_index(drop=True)
    mono_sample = X.iloc[rng.permutation(len(X))[:monotonicity_rows]].reset_index(drop=True)
    if _numeric_features(stab):
        shift = perturbation_shift(bundle, stab, gates.perturbation_scale, seed=seed)
        metrics["perturbation_shift"] = shift
        report_gates.append(
            Gate.check(
                "perturbation_shift",
                shift,
                gates.max_perturbation_shift,
                "<=",
                detail=f"mean |PD change| under noise of {gates.perturbation_scale:g} sd per numeric input",
            )
        )
    else:
        report_gates.append(
            Gate.not_applicable("perturbation_shift", gates.max_perturbation_shift, "<=", "no numeric input")
        )
    declared = sorted(f for f, d in directions.items() if d != 0 and f in X.columns)
    if declared:
        adv_share, adv_worst = adversarial_violations(bundle, stab, directions, gates.perturbation_scale)
        mono = monotonicity_violations(bundle, mono_sample, directions)
        mono_worst = max(mono.values(), default=0.0)
        metrics.update(
            {
                "adversarial_violation_share": adv_share,
                "adversarial_worst_pd_drop": adv_worst,
                "monotonicity_worst_violation": mono_worst,
                "monotonicity_features_violated": float(sum(v > 0 for v in mono.values())),
            }
        )
        metrics.update({f"monotonicity_violation.{f}": v for f, v in mono.items() if v > 0})
        violated = ", ".join(f"{f} {v:.3g}" for f, v in mono.items() if v > 0) or "none"
        report_gates += [
            Gate.check(
                "adversarial_monotone",
                adv_worst,
                0.0,
                "<=",
                detail=f"largest PD drop when nudging a declared feature towards risk; share of nudges "
                f"lowering PD {adv_share:.3g}",
            ),
            Gate.check(
                "monotonicity",
                mono_worst,
                0.0,
                "<=",
                detail=f"declared directions on {', '.join(declared)}; violated: {violated}",
            ),
        ]
    else:
        why = "no feature has a declared monotone direction"
        report_gates += [
            Gate.not_applicable("adversarial_monotone", 0.0, "<=", why),
            Gate.not_applicable("monotonicity", 0.0, "<=", why),
        ]
    if unassessed:
        notes.append(
            "fairness not (fully) assessed: " + "; ".join(f"{a}: {why}" for a, why in unassessed.items())
        )
    return GateReport(
        passed=all(g.passed for g in report_gates),
        gates=report_gates,
        metrics=metrics,
        fairness=fairness,
        notes=notes,
        unassessed=unassessed,
        operating_point=operating_point,
    )


def champion_gate(
    challenger: BundleLike,
    champion: BundleLike | None,
    test_df: pd.DataFrame,
    tolerance: float,
    champion_label: str = "champion",
) -> Gate:
    """``champion_not_worse``: challenger AUC minus champion AUC on the same rows must reach ``-tolerance``.

    Args:
        challenger: the newly trained bundle.
        champion: the bundle serving production now; None when there is none (the gate is not applicable).
        test_df: the recent hold-out both models are scored on (the challenger's target column).
        tolerance: how far the challenger's AUC may trail the champion's.
        champion_label: how the detail names the champion (e.g. ``credit-pd v3``).

    Returns:
        The gate; ``not_assessed`` and blocking when ``test_df`` lacks a champion input, or holds one class.
    """
    name, threshold = "champion_not_worse", -float(tolerance)
    if champion is None:
        return Gate.not_applicable(name, threshold, ">=", "no champion model in the registry")
    target = challenger.manifest.target
    missing = [c for c in champion.manifest.features if c not in test_df.columns]
    y = test_df[target].astype(int).to_numpy()
    if missing or len(np.unique(y)) < 2:
        why = f"hold-out lacks champion inputs {missing}" if missing else "hold-out holds a single class"
        return Gate(name, float("nan"), threshold, ">=", "not_assessed", detail=why, unassessed_blocks=True)
    new = float(roc_auc_score(y, np.asarray(challenger.predict_pd(test_df[challenger.manifest.features]))))
    old = float(roc_auc_score(y, np.asarray(champion.predict_pd(test_df[champion.manifest.features]))))
    detail = (
        f"AUC on the same {len(y)} recent hold-out rows: challenger {new:.4g}, {champion_label} {old:.4g}"
    )
    return Gate.check(name, new - old, threshold, ">=", detail=detail)
