"""Ingest: every source becomes a reproducible snapshot that reads back and validates."""

from __future__ import annotations

import pandas as pd
import pytest

from creditops.data.ingest import ingest
from creditops.data.snapshot import read_snapshot
from creditops.data.synthetic import CreditWorld
from creditops.data.validation import validate_world


def test_synthetic_ingest_is_reproducible_and_validates(tmp_path) -> None:
    first = ingest("synthetic", tmp_path, n_applicants=150, seed=4)
    assert ingest("synthetic", tmp_path, n_applicants=150, seed=4).version == first.version
    assert ingest("synthetic", tmp_path, n_applicants=150, seed=5).version != first.version
    tables, info = read_snapshot(first.path)
    assert info.source["seed"] == 4 and info.row_counts["applications"] == 150
    world = CreditWorld.from_tables(tables, info.source["as_of"])
    assert world.as_of == pd.Timestamp("2026-01-01", tz="UTC")
    assert validate_world(world).ok


@pytest.mark.parametrize(("source", "rows"), [("german_credit", 1000), ("hmda", 1989)])
def test_real_sources(tmp_path, source: str, rows: int) -> None:
    info = ingest(source, tmp_path)
    assert info.row_counts == {source: rows}
    assert info.source["spec"]["name"] == source


def test_spec_source(tmp_path) -> None:
    n = 120  # ingest refuses fewer than 50 rows of either outcome
    x = [round(0.01 * i, 2) for i in range(n)]
    pd.DataFrame({"id": range(n), "y": [i % 2 for i in range(n)], "x": x}).to_csv(
        tmp_path / "d.csv", index=False
    )
    spec = tmp_path / "d.yaml"
    spec.write_text(
        "name: mine\npath: d.csv\nid_column: id\ntarget: y\npositive_value: 1\n"
        "features: [{name: x, type: numeric}]\n"
    )
    info = ingest("spec", tmp_path / "snaps", spec_path=spec)
    tables, _ = read_snapshot(info.path)
    assert tables["mine"]["x"].tolist() == x


@pytest.mark.parametrize(
    ("source", "kwargs", "message"), [("spec", {}, "spec_path"), ("kaggle", {}, "unknown")]
)
def test_bad_source_arguments(tmp_path, source: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ingest(source, tmp_path, **kwargs)
