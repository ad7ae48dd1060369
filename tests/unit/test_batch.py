"""Batch scoring: chunked streaming, quarantine with reasons, reconciliation, audit, atomic output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_scoring import FEATURES, REASONS, make_tiny_bundle, raw_frame

from creditops.batch import score_file
from creditops.errors import DataError
from creditops.governance.audit import AuditLog


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_score_file_chunks_quarantine_and_audit(tiny, tmp_path, fmt):
    """The user's own file (raw categoricals), streamed in chunks; bad rows quarantined with the reason."""
    bundle, X = tiny
    df = raw_frame(600).head(250).reset_index(drop=True)
    df.insert(0, "applicant_id", np.arange(1000, 1250))
    df.loc[3, "income"] = np.nan  # missing: scored (the model routes it), as on the request path
    df.loc[7, "utilisation"] = 9.0  # out of range
    df.loc[8, "age"] = np.inf
    df.loc[9, "purpose"] = "boat"  # unknown category
    df.loc[10, "income"] = 1e39  # finite, beyond float32
    src = tmp_path / f"in.{fmt}"
    df.to_parquet(src) if fmt == "parquet" else df.to_csv(src, index=False)
    out = tmp_path / "out.parquet"
    log = AuditLog.open(f"sqlite:///{tmp_path}/audit.db")
    result = score_file(bundle, src, out, audit=log, chunk_rows=64, progress=False, top_k=2)

    assert result.rows_in == 250 and result.rows_quarantined == 4 and result.rows_scored == 246
    scored = pd.read_parquet(out)
    assert len(scored) == 246
    assert list(scored.columns[:5]) == ["applicant_id", "prediction_id", "pd", "score", "decision"]
    assert {"reason_1", "reason_2", "model_version"} <= set(scored.columns)
    good = X.head(250).reset_index(drop=True).drop(index=[7, 8, 9, 10]).astype("float64")
    good.loc[3, "income"] = np.nan
    np.testing.assert_array_equal(scored["applicant_id"], df.drop(index=[7, 8, 9, 10])["applicant_id"])
    np.testing.assert_allclose(scored["pd"], bundle.predict_pd(good[FEATURES]), atol=1e-5)
    assert set(scored["reason_1"].dropna()) <= set(REASONS.values())
    assert not set(scored["reason_1"].dropna()) & {"purpose__car", "purpose__education", "purpose__other"}

    q = pq.read_table(result.quarantine_path).to_pandas()
    assert q["row_number"].tolist() == [7, 8, 9, 10]
    assert "utilisation: outside valid range" in q["reason"][0]
    assert "age: outside valid range" in q["reason"][1]
    assert "purpose: unknown category (allowed: 'car', 'education', 'other')" in q["reason"][2]
    assert "income: outside valid range" in q["reason"][3]

    assert log.count() == 246 and log.verify().ok
    audited = log.read_inputs(limit=None)
    assert set(audited["prediction_id"]) == set(scored["prediction_id"])
    np.testing.assert_allclose(audited["income"], good["income"].astype(np.float32))


def test_missing_feature_column_fails_without_output(tiny, tmp_path):
    bundle, X = tiny
    src = tmp_path / "in.parquet"
    raw_frame(50).drop(columns=["age"]).to_parquet(src)
    out = tmp_path / "out.parquet"
    with pytest.raises(DataError, match="age"):
        score_file(bundle, src, out, progress=False)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_failing_audit_leaves_no_output(tiny, tmp_path):
    bundle, X = tiny
    src = tmp_path / "in.parquet"
    X.to_parquet(src)
    out = tmp_path / "out.parquet"
    log = AuditLog.open(f"sqlite:///{tmp_path}/audit.db")
    log.close()  # closed connection: the first chunk's audit append fails
    with pytest.raises(Exception):  # noqa: B017 - sqlite's ProgrammingError
        score_file(bundle, src, out, audit=log, chunk_rows=100, progress=False)
    assert not out.exists()


def test_unsupported_format(tiny, tmp_path):
    (tmp_path / "in.json").write_text("{}")
    with pytest.raises(DataError, match="unsupported"):
        score_file(tiny[0], tmp_path / "in.json", tmp_path / "o.parquet", progress=False)


def test_contract_valid_ranges_apply(tiny, tmp_path):
    from creditops.artifact import load_bundle, save_bundle

    bundle, X = tiny
    contract = bundle.contract.model_copy(update={"valid_ranges": {"utilisation": (0.0, 1.5)}})
    manifest = bundle.manifest.model_copy(update={"valid_ranges": {"utilisation": (0.0, 1.5)}})
    save_bundle(tmp_path / "ranged", bundle.booster, manifest, bundle.reference, contract=contract)
    ranged = load_bundle(tmp_path / "ranged")
    df = X.head(20).astype("float64").reset_index(drop=True)  # a file of the model's own columns works too
    df.loc[5, "utilisation"] = 1.7
    src = tmp_path / "in.parquet"
    df.to_parquet(src)
    result = score_file(ranged, src, tmp_path / "out.parquet", progress=False)
    assert result.rows_quarantined == 1 and result.rows_scored == 19
    assert score_file(bundle, src, tmp_path / "out2.parquet", progress=False).rows_quarantined == 0


def test_parquet_is_read_a_few_row_groups_at_a_time(tmp_path):
    """Chunks of at most ``chunk_rows`` rows, every row once, in order, across uneven row groups."""
    import pyarrow as pa

    from creditops.batch import _parquet_chunks

    path = tmp_path / "groups.parquet"
    with pq.ParquetWriter(path, pa.schema([("x", pa.int64())])) as writer:
        start = 0
        for size in (30, 30, 5, 70, 0, 12):
            writer.write_table(pa.table({"x": np.arange(start, start + size)}))
            start += size
    chunks = list(_parquet_chunks(pq.ParquetFile(path), 50))
    assert all(len(c) <= 50 for c in chunks)
    np.testing.assert_array_equal(np.concatenate([c["x"].to_numpy() for c in chunks]), np.arange(start))
    assert [len(c) for c in chunks] == [50, 10, 50, 25, 12]  # groups (30+30), (5+70), (0+12)
