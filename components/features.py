"""Step 3: compute features, write them where Feast's offline sources read them, fill the online store."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def compute_features(config: str, validated: Input[Dataset], entities: Output[Dataset]) -> int:
    """Build the feature tables, ``feast apply`` + materialize, and emit the training entity frame.

    Returns:
        Number of applicants (entity rows).
    """
    from creditops.config import Settings
    from creditops.data.snapshot import read_snapshot
    from creditops.data.synthetic import CreditWorld
    from creditops.features.build import build_feature_tables, entity_frame
    from feast_repo.store import apply, materialize, open_store, write_offline

    settings = Settings.model_validate_json(config)
    tables, info = read_snapshot(validated.metadata["path"])
    world = CreditWorld.from_tables(tables, info.source["as_of"])
    features, entity_df = build_feature_tables(world), entity_frame(world.applications)
    store = open_store(config=settings.feast)
    write_offline(features, store)
    apply(store)
    materialize(store, end=world.as_of)
    entity_df.to_parquet(entities.path, index=False)
    entities.metadata.update({"version": info.version, "rows": len(entity_df)})
    return len(entity_df)
