"""The training pipeline: data version -> registered, documented, gated model. Wiring only.

Compile: ``python -m pipelines.training`` (writes ``pipelines/training.yaml``, checked in; a test recompiles
and diffs). Run locally: ``creditops train`` (KFP local SubprocessRunner on the embedded defaults).
Parameters are typed with defaults (a dashboard user sets them); ``config`` is an optional config file path
(or ``Settings`` JSON) for everything else; the typed parameters win over it.
"""

from pathlib import Path

from kfp import compiler, dsl

from components.retraining import resolve_run_settings
from pipelines.chain import wire_data, wire_model
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
    data = wire_data(config)
    model = wire_model(config, data.features.outputs["entities"])
    configure(settings, *data.tasks(), *model.tasks())
    return model.register.output


def compile_pipeline(path: Path = COMPILED) -> Path:
    """Compile to KFP IR YAML for a cluster."""
    compiler.Compiler().compile(training_pipeline, str(path))
    return path


if __name__ == "__main__":
    print(compile_pipeline())
