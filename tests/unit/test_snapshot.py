"""Content-addressed snapshots: idempotence, sensitivity, immutability, round trip, corruption."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from creditops.data.snapshot import read_snapshot, write_snapshot
from creditops.data.synthetic import generate_world
from creditops.errors import DataError

SOURCE = {"kind": "synthetic", "seed": 1}


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return generate_world(200, seed=1).tables()


def test_identical_data_gives_identical_version_and_is_not_rewritten(tmp_path, tables) -> None:
    first = write_snapshot(tables, tmp_path, SOURCE)
    stamp = os.stat(first.path / "bureau.parquet").st_mtime_ns
    again = write_snapshot({k: v.copy() for k, v in tables.items()}, tmp_path, dict(SOURCE))
    assert again.version == first.version and again.path == first.path == tmp_path / first.version
    assert again.created_at == first.created_at
    assert os.stat(first.path / "bureau.parquet").st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.version]


@pytest.mark.parametrize("change", ["value", "dtype", "source", "column_order", "drop_row"])
def test_any_change_gives_a_new_version(tmp_path, tables, change: str) -> None:
    base = write_snapshot(tables, tmp_path, SOURCE).version
    changed, source = {k: v.copy() for k, v in tables.items()}, dict(SOURCE)
    apps = changed["applications"]
    if change == "value":
        apps.loc[0, "income"] += 1
    elif change == "dtype":
        changed["applications"] = apps.astype({"age": "int64"})
    elif change == "source":
        source["seed"] = 2
    elif change == "column_order":
        changed["applications"] = apps[list(apps.columns[::-1])]
    else:
        changed["applications"] = apps.iloc[1:]
    assert write_snapshot(changed, tmp_path, source).version != base


def test_round_trip_keeps_data_dtypes_and_lineage(tmp_path, tables) -> None:
    info = write_snapshot(tables, tmp_path, {**SOURCE, "parents": ["abc"]})
    back, read_info = read_snapshot(info.path)
    for name, df in tables.items():
        pd.testing.assert_frame_equal(back[name], df)
    assert read_info.version == info.version and read_info.row_counts == {
        k: len(v) for k, v in tables.items()
    }
    doc = json.loads((info.path / "snapshot.json").read_text())
    assert set(doc) == {"version", "source", "schema", "row_counts", "lineage", "created_at"}
    assert doc["lineage"]["parents"] == ["abc"]
    assert set(doc["lineage"]["tables"]) == set(tables)
    assert doc["schema"]["bureau"][0] == ["applicant_id", "int64"]


def test_tampered_snapshot_fails_verification(tmp_path, tables) -> None:
    info = write_snapshot(tables, tmp_path, SOURCE)
    apps = pd.read_parquet(info.path / "applications.parquet")
    apps.loc[0, "income"] = 1.0
    apps.to_parquet(info.path / "applications.parquet", index=False)
    with pytest.raises(DataError, match="does not match its version"):
        read_snapshot(info.path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("manifest", "snapshot manifest not found"),
        ("table", "snapshot table missing"),
        ("garbage", "cannot read"),
    ],
)
def test_broken_snapshot_raises_data_error_naming_the_file(
    tmp_path, tables, damage: str, message: str
) -> None:
    info = write_snapshot(tables, tmp_path, SOURCE)
    if damage == "manifest":
        (info.path / "snapshot.json").unlink()
    elif damage == "table":
        (info.path / "bureau.parquet").unlink()
    else:
        (info.path / "bureau.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=message) as err:
        read_snapshot(info.path)
    assert str(info.path) in str(err.value)
