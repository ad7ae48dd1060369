"""The retraining steps beyond training's: run settings, the recent window, the champion gate, the trigger.

The retraining pipeline reuses every training step; what it adds is here: typed run parameters resolved into
``Settings`` once, a window of the last ``months`` of applications, the ``champion_not_worse`` gate against
the registry's ``champion`` on the same recent hold-out, and the trigger reason recorded on the MLflow run
and model version. The new version gets alias ``challenger`` (by :func:`register`); ``champion`` is never
moved here: the rollout controller does that.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from creditops.config import Settings, load_config
from creditops.errors import ConfigError, DataError
from creditops.features.registry import TIMESTAMP
from creditops.governance.gates import BundleLike, GateReport, champion_gate
from creditops.governance.registry import CHAMPION, alias_version, resolve, tracking_uri_for

MONTH = pd.Timedelta(days=30.4375)


def run_settings(
    config: str, workdir: str, source: str, n_applicants: int, seed: int, n_trials: int
) -> Settings:
    """Resolved settings of a pipeline run: a config (file path, JSON ``Settings`` or ``""``) + typed params.

    The typed parameters (what a Kubeflow dashboard user sets) win over the config's values.

    Raises:
        ConfigError: a bad config or parameter (the message names the field).
    """
    overrides: dict[str, Any] = {
        "data": {"source": source, "n_applicants": n_applicants, "seed": seed},
        "training": {"n_trials": n_trials},
    }
    if workdir:
        overrides["workdir"] = workdir
    if config.lstrip().startswith("{"):
        try:
            raw = json.loads(config)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config: not valid JSON ({exc.msg})") from exc
        for section in ("data", "training"):
            overrides[section] = {**raw.get(section, {}), **overrides[section]}
        return load_config(None, {**raw, **overrides}).resolved()
    return load_config(config or None, overrides).resolved()


def recent_window(entities: pd.DataFrame, months: int, timestamp: str = TIMESTAMP) -> pd.DataFrame:
    """The entity rows of the last ``months`` months, counted back from the newest row's timestamp.

    Raises:
        DataError: ``months`` is not positive, or the frame has no ``timestamp`` column.
    """
    if months < 1:
        raise DataError(f"window_months must be at least 1, got {months}")
    if timestamp not in entities.columns:
        raise DataError(f"entity frame has no {timestamp!r} column to take a window on")
    when = pd.to_datetime(entities[timestamp], utc=True)
    start = when.max() - months * MONTH
    return entities[when > start].reset_index(drop=True)


def current_champion(settings: Settings) -> tuple[str | None, BundleLike | None]:
    """The registry's ``champion`` version and its bundle (``(None, None)`` when there is none)."""
    from creditops.artifact import load_bundle

    uri = tracking_uri_for(settings.mlflow.tracking_uri)
    name = settings.mlflow.model_name
    version = alias_version(uri, name, CHAMPION)
    if version is None:
        return None, None
    local = resolve(uri, f"models:/{name}/{version}", tempfile.mkdtemp(prefix="creditops-champion-"))
    return version, load_bundle(local)


def expected_score_psi(challenger: BundleLike, champion: Any, test: pd.DataFrame) -> float:
    """PSI of the challenger's PDs against the champion's on the same recent hold-out.

    A retrained model is expected to score differently from the champion (that is why it was retrained); this
    is how much, measured where both were judged. The canary's score-shift judge allows this much on top of
    its threshold (:func:`creditops.deploy.commands.canary_local`), so it catches a canary that scores live
    traffic differently from what was validated, not the validated change itself.
    """
    from creditops.monitoring.drift import psi

    new = np.asarray(challenger.predict_pd(test[list(challenger.manifest.features)]), dtype=float)
    old = np.asarray(champion.predict_pd(test[list(champion.manifest.features)]), dtype=float)
    return float(psi(old, new, bins=10))


def with_champion_gate(
    report: GateReport, challenger: BundleLike, test: pd.DataFrame, settings: Settings
) -> GateReport:
    """The training gates' report plus ``champion_not_worse`` (the verdict recomputed over all gates)."""
    version, champion = current_champion(settings)
    label = f"champion {settings.mlflow.model_name} v{version}"
    gate = champion_gate(challenger, champion, test, settings.gates.champion_tolerance, label)
    metrics = dict(report.metrics)
    if gate.value == gate.value:
        metrics["champion_not_worse"] = gate.value
        metrics["champion_score_psi"] = expected_score_psi(challenger, champion, test)
    if version is not None:
        metrics["champion_version"] = float(version)
    gates = [*report.gates, gate]
    return GateReport(
        passed=all(g.passed for g in gates),
        gates=gates,
        metrics=metrics,
        fairness=report.fairness,
        notes=report.notes,
        unassessed=report.unassessed,
        operating_point=report.operating_point,
    )


def record_trigger(settings: Settings, summary_json: str, reason: str, window_months: int) -> dict[str, Any]:
    """Tag the run (and the registered version, if any) with why and on what window it was retrained.

    Returns:
        The run summary plus ``trigger_reason``, ``window_months``, ``champion_version`` and ``handoff``
        (what the rollout controller is to do with the challenger; empty when nothing was registered).
    """
    summary = json.loads(summary_json)
    uri = tracking_uri_for(settings.mlflow.tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name, version = settings.mlflow.model_name, summary.get("registered_version")
    tags = {"retraining.reason": reason or "unspecified", "retraining.window_months": str(window_months)}
    for key, value in tags.items():
        client.set_tag(summary["run_id"], key, value)
        if version:
            client.set_model_version_tag(name, version, key, value)
    handoff: dict[str, Any] = {}
    if version:
        handoff = {
            "model": name,
            "challenger": version,
            "strategy": settings.deploy.strategy,
            "command": f"creditops rollout {settings.deploy.strategy} --version {version}",
        }
    champion = alias_version(uri, name, CHAMPION)
    return {
        **summary,
        "trigger_reason": tags["retraining.reason"],
        "window_months": window_months,
        "champion_version": champion,
        "handoff": handoff,
    }
