"""Step 6: refit with the tuned parameters (monotone), 5-fold CV, calibration, baselines, the bundle."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def train_model(
    config: str,
    run_id: str,
    train: Input[Dataset],
    valid: Input[Dataset],
    test: Input[Dataset],
    best_params: Input[Artifact],
    model: Output[Model],
    evidence: Output[Artifact],
    metrics: Output[Metrics],
) -> float:
    """Fit the final model and write the self-describing bundle (model + manifest + reference sample).

    The baselines are fitted on the same train split; ``evidence`` (CV AUCs, raw-score test AUC, baseline and
    tuned-model test metrics) carries what the gate step cannot measure on the test set alone.

    Returns:
        Mean cross-validated AUC-ROC.
    """
    import json

    import pandas as pd

    from creditops.config import Settings
    from creditops.features.contract import FeatureContract
    from creditops.training.workflow import train_bundle

    settings = Settings.model_validate_json(config)
    with open(best_params.path) as fh:
        params = json.load(fh)
    manifest = train_bundle(
        pd.read_parquet(train.path),
        pd.read_parquet(valid.path),
        params=params,
        settings=settings,
        data_version=train.metadata["version"],
        run_id=run_id,
        bundle_dir=model.path,
        contract=FeatureContract.model_validate(train.metadata["contract"]),
        test=pd.read_parquet(test.path),
        evidence_path=evidence.path,
    )
    for name, value in manifest.metrics.items():
        metrics.log_metric(name, float(value))
    model.metadata.update(
        {"data_version": manifest.data_version, "feature_service": manifest.feature_service}
    )
    return float(manifest.metrics["cv_auc_mean"])
