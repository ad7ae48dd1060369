"""The retraining pipeline: the last months of data -> a gated challenger, never a new champion. Wiring only.

The training steps, plus: a window of the last ``window_months`` months of applications, the gate
``champion_not_worse`` (challenger vs the registry's ``champion`` on the same recent hold-out), and the
trigger ``reason`` recorded on the MLflow run and version. A passing model is registered with alias
``challenger``; the returned summary's ``handoff`` names the rollout that may make it champion.

Compile: ``creditops compile`` (writes ``pipelines/retraining.yaml``, checked in; a test recompiles and
diffs). Run locally: ``creditops retrain --reason ...`` (KFP local SubprocessRunner).
"""

from pathlib import Path
from typing import Any

from kfp import compiler, dsl

from components.retraining import (
    compare_with_champion,
    record_retraining,
    resolve_run_settings,
    select_recent_window,
)
from pipelines.chain import wire_data, wire_model
from pipelines.resources import configure

COMPILED = Path(__file__).with_name("retraining.yaml")


@dsl.pipeline(
    name="creditops-retraining",
    description="Recent window, tune, train, gate (incl. champion not worse), register as challenger.",
)
def retraining_pipeline(
    reason: str = "scheduled",
    window_months: int = 12,
    config: str = "",
    workdir: str = "",
    source: str = "synthetic",
    n_applicants: int = 20_000,
    seed: int = 7,
    n_trials: int = 100,
) -> str:
    """Wire the steps; returns the run summary (JSON) with the trigger reason and the rollout hand-off."""
    settings = resolve_run_settings(
        config=config, workdir=workdir, source=source, n_applicants=n_applicants, seed=seed, n_trials=n_trials
    )
    config = settings.output
    data = wire_data(config)
    window = select_recent_window(entities=data.features.outputs["entities"], window_months=window_months)

    def champion_gate(config: Any, model: Any, test: Any, gate_report: Any) -> tuple[Any, Any]:
        task = compare_with_champion(config=config, model=model, test=test, gate_report=gate_report)
        return task, task.outputs["report"]

    steps = wire_model(config, window.outputs["recent"], judge=champion_gate)
    record = record_retraining(
        config=config, summary=steps.register.output, reason=reason, window_months=window_months
    )
    configure(settings, *data.tasks(), window, *steps.tasks(), record)
    return record.output


def compile_pipeline(path: Path = COMPILED) -> Path:
    """Compile to KFP IR YAML for a cluster."""
    compiler.Compiler().compile(retraining_pipeline, str(path))
    return path


if __name__ == "__main__":
    print(compile_pipeline())
