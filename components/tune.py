"""Step 5: Optuna TPE search with pruning; every trial a nested MLflow run."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def tune_model(
    config: str,
    train: Input[Dataset],
    valid: Input[Dataset],
    best_params: Output[Artifact],
    metrics: Output[Metrics],
) -> NamedTuple("TuneOutputs", [("run_id", str), ("best_valid_auc", float)]):
    """Tune XGBoost on validation AUC-ROC; the parent MLflow run id carries the lineage to later steps."""
    import json
    from collections import namedtuple

    import pandas as pd

    from creditops.config import Settings
    from creditops.features.contract import FeatureContract
    from creditops.training.workflow import tune_in_new_run

    settings = Settings.model_validate_json(config)
    result, run_id = tune_in_new_run(
        pd.read_parquet(train.path),
        pd.read_parquet(valid.path),
        settings=settings,
        data_version=train.metadata["version"],
        contract=FeatureContract.model_validate(train.metadata["contract"]),
    )
    with open(best_params.path, "w") as fh:
        json.dump(result.best_params, fh, indent=2)
    metrics.log_metric("best_valid_auc", result.best_value)
    metrics.log_metric("n_trials", result.n_trials)
    metrics.log_metric("n_pruned", result.n_pruned)
    return namedtuple("TuneOutputs", ["run_id", "best_valid_auc"])(run_id, float(result.best_value))
