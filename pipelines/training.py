"""The training pipeline: data version -> registered, documented, gated model. Wiring only.

Compile: ``python -m pipelines.training`` (writes ``pipelines/training.yaml``, checked in; a test recompiles
and diffs). Run locally: ``creditops train`` (KFP local SubprocessRunner on the embedded defaults).
Parameters are typed with defaults (a dashboard user sets them); ``config`` is an optional config file path
(or ``Settings`` JSON) for everything else; the typed parameters win over it.
"""

from pathlib import Path

from kfp import compiler, dsl

from components.features import compute_features
from components.gates import evaluate_gates
from components.ingest import ingest_data
from components.model_card import write_model_card
from components.register import register_model
from components.retraining import resolve_run_settings
from components.train import train_model
from components.training_set import build_training_set
from components.tune import tune_model
from components.validate import validate_data
from pipelines.resources import configure

COMPILED = Path(__file__).with_name("training.yaml")


@dsl.pipeline(
    name="creditops-training", description="Ingest, validate, featurise, tune, train, gate, register."
)
def training_pipeline(
    config: str = "",
    workdir: str = "",
    source: str = "synthetic",
    n_applicants: int = 20_000,
    seed: int = 7,
    n_trials: int = 100,
) -> str:
    """Wire the steps; returns the run summary (JSON)."""
    settings = resolve_run_settings(
        config=config, workdir=workdir, source=source, n_applicants=n_applicants, seed=seed, n_trials=n_trials
    )
    config = settings.output
    ingest = ingest_data(config=config)
    validate = validate_data(config=config, snapshot=ingest.outputs["snapshot"])
    features = compute_features(config=config, validated=validate.outputs["validated"])
    training_set = build_training_set(config=config, entities=features.outputs["entities"])
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
    card = write_model_card(
        config=config,
        model=train.outputs["model"],
        test=training_set.outputs["test"],
        gate_report=gates.outputs["gate_report"],
        evidence=train.outputs["evidence"],
    )
    register = register_model(
        config=config,
        run_id=tune.outputs["run_id"],
        model=train.outputs["model"],
        gate_report=gates.outputs["gate_report"],
        card_markdown=card.outputs["card_markdown"],
        card_html=card.outputs["card_html"],
        entities=features.outputs["entities"],
        evidence=train.outputs["evidence"],
    )
    configure(settings, ingest, validate, features, training_set, tune, train, gates, card, register)
    return register.output


def compile_pipeline(path: Path = COMPILED) -> Path:
    """Compile to KFP IR YAML for a cluster."""
    compiler.Compiler().compile(training_pipeline, str(path))
    return path


if __name__ == "__main__":
    print(compile_pipeline())
