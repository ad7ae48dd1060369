"""Steps the retraining pipeline adds to training's: settings, recent window, champion gate, trigger."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def resolve_run_settings(
    config: str, workdir: str, source: str, n_applicants: int, seed: int, n_trials: int
) -> str:
    """Parse the run's configuration once: config (YAML path, ``Settings`` JSON or ``""``) + typed parameters.

    Returns:
        The resolved ``Settings`` as JSON (what every later step takes).
    """
    from creditops.training.retraining import run_settings

    return run_settings(config, workdir, source, n_applicants, seed, n_trials).model_dump_json()


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def select_recent_window(entities: Input[Dataset], window_months: int, recent: Output[Dataset]) -> int:
    """Keep the entity rows of the last ``window_months`` months; the metadata (contract too) rides along.

    Returns:
        Rows in the window.
    """
    import pandas as pd

    from creditops.training.retraining import recent_window

    frame = recent_window(pd.read_parquet(entities.path), window_months)
    frame.to_parquet(recent.path, index=False)
    recent.metadata.update({**entities.metadata, "rows": len(frame), "window_months": window_months})
    return len(frame)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def compare_with_champion(
    config: str,
    model: Input[Model],
    test: Input[Dataset],
    gate_report: Input[Artifact],
    report: Output[Artifact],
    gate_summary: Output[Markdown],
    metrics: Output[Metrics],
) -> NamedTuple("ChampionOutputs", [("passed", bool), ("summary", str)]):
    """Add ``champion_not_worse`` (challenger vs the registry's champion, same hold-out) to the report."""
    import json
    from collections import namedtuple
    from pathlib import Path

    import pandas as pd

    from creditops.artifact import load_bundle
    from creditops.config import Settings
    from creditops.governance.gates import GateReport
    from creditops.training.retraining import with_champion_gate

    settings = Settings.model_validate_json(config)
    previous = GateReport.from_dict(json.loads(Path(gate_report.path).read_text()))
    full = with_champion_gate(previous, load_bundle(model.path), pd.read_parquet(test.path), settings)
    Path(report.path).write_text(json.dumps(full.to_dict(), indent=2))
    Path(gate_summary.path).write_text(full.summary())
    gate = full.gate("champion_not_worse")
    metrics.log_metric("champion_not_worse.passed", int(gate.passed))
    if gate.value == gate.value:
        metrics.log_metric("champion_not_worse", float(gate.value))
    return namedtuple("ChampionOutputs", ["passed", "summary"])(bool(full.passed), full.summary())


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def record_retraining(config: str, summary: str, reason: str, window_months: int) -> str:
    """Tag the MLflow run and version with the trigger reason; name the rollout hand-off.

    Returns:
        The run summary (JSON) with ``trigger_reason``, ``window_months``, ``champion_version``, ``handoff``.
    """
    import json

    from creditops.config import Settings
    from creditops.training.retraining import record_trigger

    settings = Settings.model_validate_json(config)
    return json.dumps(record_trigger(settings, summary, reason, window_months))
