"""The daily data pipeline: ingest -> validate (quarantine) -> features + materialize. Wiring only.

The first three steps of the training pipeline on their own, scheduled daily by the KFP recurring run of
``manifests/base/kfp/recurring-runs.yaml``. Compile: ``python -m pipelines.data`` (writes
``pipelines/data.yaml``, checked in; tests/deploy recompiles and diffs).
"""

from pathlib import Path

from kfp import compiler, dsl

from components.features import compute_features
from components.ingest import ingest_data
from components.validate import validate_data

COMPILED = Path(__file__).with_name("data.yaml")


@dsl.pipeline(
    name="creditops-data", description="Ingest, validate, featurise + materialize the online store."
)
def data_pipeline(config: str) -> int:
    """Wire the data steps; ``config`` is the run's ``Settings`` as JSON. Returns the featurised row count."""
    ingest = ingest_data(config=config)
    validate = validate_data(config=config, snapshot=ingest.outputs["snapshot"])
    features = compute_features(config=config, validated=validate.outputs["validated"])
    return features.outputs["Output"]


def compile_pipeline(path: Path = COMPILED) -> Path:
    """Compile to KFP IR YAML for a cluster."""
    compiler.Compiler().compile(data_pipeline, str(path))
    return path


if __name__ == "__main__":
    print(compile_pipeline())
