"""Step 4: point-in-time-correct training set from the feature service, split train/valid/test."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def build_training_set(
    config: str,
    entities: Input[Dataset],
    train: Output[Dataset],
    valid: Output[Dataset],
    test: Output[Dataset],
) -> int:
    """``get_historical_features`` through the contract's FeatureService, then split 80/10/10.

    The split is random (stratified on the contract's target) or out-of-time, as configured.

    Returns:
        Rows in the training set before splitting.
    """
    import pandas as pd

    from creditops.config import Settings
    from creditops.features.contract import FeatureContract
    from creditops.training.split import split_frame
    from feast_repo.store import open_store, training_frame

    settings = Settings.model_validate_json(config)
    contract = FeatureContract.model_validate(entities.metadata["contract"])
    frame = training_frame(open_store(config=settings.feast), pd.read_parquet(entities.path), contract)
    split = split_frame(
        frame, how=settings.training.split, seed=settings.training.seed, target=contract.target
    )
    for part, artifact in ((split.train, train), (split.valid, valid), (split.test, test)):
        part.to_parquet(artifact.path, index=False)
        artifact.metadata.update(
            {
                "version": entities.metadata["version"],
                "rows": len(part),
                "contract": entities.metadata["contract"],
            }
        )
    return len(frame)
