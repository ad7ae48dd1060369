"""Step 1: raw sources -> immutable, content-addressed snapshot."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def ingest_data(config: str, snapshot: Output[Dataset]) -> str:
    """Ingest the configured source into a snapshot directory.

    Args:
        config: ``Settings`` as JSON.
        snapshot: directory holding one Parquet file per raw table and ``snapshot.json`` (lineage).

    Returns:
        The data version (content hash).
    """
    from creditops.config import Settings
    from creditops.data.ingest import ingest

    settings = Settings.model_validate_json(config)
    info = ingest(
        settings.data.source,
        out_root=snapshot.path,
        n_applicants=settings.data.n_applicants,
        seed=settings.data.seed,
        spec_path=settings.data.spec_path,
    )
    snapshot.metadata.update({"version": info.version, "path": str(info.path), "rows": info.row_counts})
    return info.version
