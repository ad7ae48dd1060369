"""KFP components called through ``.python_func`` with real artifacts on disk (no KFP runner)."""

from pathlib import Path

from kfp.dsl import Dataset, Markdown, Metrics

from components.ingest import ingest_data
from components.validate import validate_data
from creditops.config import load_config


def _artifact(cls: type, tmp_path: Path, name: str) -> object:
    return cls(name=name, uri=str(tmp_path / name), metadata={})


def test_ingest_then_validate_accounts_for_every_row(tmp_path: Path) -> None:
    config = load_config(None, {"workdir": str(tmp_path), "data": {"n_applicants": 300}}).resolved()
    snapshot = _artifact(Dataset, tmp_path, "snapshot")
    version = ingest_data.python_func(config=config.model_dump_json(), snapshot=snapshot)
    assert snapshot.metadata["version"] == version

    again = _artifact(Dataset, tmp_path, "snapshot_again")
    assert ingest_data.python_func(config=config.model_dump_json(), snapshot=again) == version

    outputs = {
        "validated": _artifact(Dataset, tmp_path, "validated"),
        "quarantine": _artifact(Dataset, tmp_path, "quarantine"),
        "quality_report": _artifact(Markdown, tmp_path, "report.md"),
        "metrics": _artifact(Metrics, tmp_path, "metrics"),
    }
    rows_in, rows_quarantined = validate_data.python_func(
        config=config.model_dump_json(), snapshot=snapshot, **outputs
    )
    accepted = sum(outputs["validated"].metadata["rows"].values())
    assert rows_in == sum(snapshot.metadata["rows"].values())
    assert rows_in == accepted + rows_quarantined
    assert outputs["validated"].metadata["version"] == version
    assert "applications" in Path(outputs["quality_report"].path).read_text()
