"""The retraining pipeline: the last months of data -> a gated challenger, never a new champion. Wiring only.

The training steps, plus: a window of the last ``window_months`` months of applications, the gate
``champion_not_worse`` (challenger vs the registry's ``champion`` on the same recent hold-out), and the
trigger ``reason`` recorded on the MLflow run and version. A passing model is registered with alias
``challenger``; the returned summary's ``handoff`` names the rollout that may make it champion.

Compile: ``creditops compile`` (writes ``pipelines/retraining.yaml``, checked in; a test recompiles and
diffs). Run locally: ``creditops retrain --reason ...`` (KFP local SubprocessRunner).
"""

from pathlib import Path

from kfp import compiler, dsl

from components.features import compute_features
from components.gates import evaluate_gates
from components.ingest import ingest_data
from components.model_card import write_model_card
from components.register import register_model
from components.retraining import (
    compare_with_champion,
    record_retraining,
    resolve_run_settings,
    select_recent_window,
)
from components.train import train_model
from components.training_set import build_training_set
from components.tune import tune_model
from components.validate import validate_data
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
    ingest = ingest_data(config=config)
    validate = validate_data(config=config, snapshot=ingest.outputs["snapshot"])
    features = compute_features(config=config, validated=validate.outputs["validated"])
    window = select_recent_window(entities=features.outputs["entities"], window_months=window_months)
    training_set = build_training_set(config=config, entities=window.outputs["recent"])
    tune = tune_model(config=config, train=training_set.outputs["train"], valid=training_set.outputs["valid"])
    train = train_model(
        config=config,
        run_id=tune.outputs["run_id"],
        train=training_set.outputs["train"],
        valid=training_set.outputs["valid"],
        test=training_set.outputs["test"],
        best_params=tune.outputs["best_params"],
    )
    gates = evaluate_gates(
        config=config,
        model=train.outputs["model"],
        test=training_set.outputs["test"],
        evidence=train.outputs["evidence"],
    )
    champion = compare_with_champion(
        config=config,
        model=train.outputs["model"],
        test=training_set.outputs["test"],
        gate_report=gates.outputs["gate_report"],
    )
    card = write_model_card(
        config=config,
        model=train.outputs["model"],
        test=training_set.outputs["test"],
        gate_report=champion.outputs["report"],
        evidence=train.outputs["evidence"],
    )
    register = register_model(
        config=config,
        run_id=tune.outputs["run_id"],
        model=train.outputs["model"],
        gate_report=champion.outputs["report"],
        card_markdown=card.outputs["card_markdown"],
        card_html=card.outputs["card_html"],
        entities=window.outputs["recent"],
        evidence=train.outputs["evidence"],
    )
    record = record_retraining(
        config=config, summary=register.output, reason=reason, window_months=window_months
    )
    configure(
        settings, ingest, validate, features, window, training_set, tune, train, gates, champion, card,
        register, record,
    )  # fmt: skip
    return record.output


def compile_pipeline(path: Path = COMPILED) -> Path:
    """Compile to KFP IR YAML for a cluster."""
    compiler.Compiler().compile(retraining_pipeline, str(path))
    return path


if __name__ == "__main__":
    print(compile_pipeline())
