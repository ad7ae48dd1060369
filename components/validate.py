"""Step 2: validate a snapshot; bad rows go to quarantine with the rule they broke."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def validate_data(
    config: str,
    snapshot: Input[Dataset],
    validated: Output[Dataset],
    quarantine: Output[Dataset],
    quality_report: Output[Markdown],
    metrics: Output[Metrics],
) -> NamedTuple("ValidationOutputs", [("rows_in", int), ("rows_quarantined", int)]):
    """Check schema, ranges, nulls, duplicates, categories, future timestamps and referential integrity.

    Rows in == rows accepted + rows quarantined, per table; the validated tables keep the snapshot's version.
    """
    from collections import namedtuple
    from pathlib import Path

    from creditops.data.ingest import validate_snapshot
    from creditops.data.snapshot import read_snapshot, write_snapshot

    tables, info = read_snapshot(snapshot.metadata["path"])
    result = validate_snapshot(tables, info)
    out = write_snapshot(
        result.accepted, validated.path, source={**info.source, "validated_from": info.version}
    )
    result.quarantine.to_parquet(quarantine.path)
    Path(quality_report.path).write_text(result.report_markdown)
    validated.metadata.update({"path": str(out.path), "version": info.version, "rows": out.row_counts})
    rows_in, rows_bad = sum(c["rows_in"] for c in result.counts.values()), len(result.quarantine)
    metrics.log_metric("rows_in", rows_in)
    metrics.log_metric("rows_quarantined", rows_bad)
    return namedtuple("ValidationOutputs", ["rows_in", "rows_quarantined"])(rows_in, rows_bad)
