"""alibi-detect KSDrift (the ``alibi-detect`` detector backend) decides drift exactly as scipy's KS does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from governance_helpers import FEATURES, make_frame

from detector.model import DriftDetector


def _batch(seed: int, shift: dict[str, float]) -> list[dict[str, float]]:
    frame = make_frame(400, seed)[FEATURES].astype(float)
    for feature, delta in shift.items():
        frame[feature] = frame[feature] + delta * frame[feature].std()
    return frame.to_dict(orient="records")


@pytest.mark.parametrize("correction", ["bonferroni", "fdr_bh"])
@pytest.mark.parametrize(
    "shift",
    [{}, {"utilisation": 0.8}, {"income_k": -0.8}, {"noise": 1.0, "num_late": 1.5}],
    ids=["none", "utilisation", "income", "two-features"],
)
def test_ksdrift_decisions_equal_scipy(bundle_dir: Path, correction: str, shift: dict[str, float]) -> None:
    reports = {}
    for backend in ("scipy", "alibi-detect"):
        model = DriftDetector("drift", bundle_dir, backend=backend, correction=correction)
        assert model.load()
        reports[backend] = model.predict({"instances": _batch(21, shift)})
    scipy_report, alibi_report = reports["scipy"], reports["alibi-detect"]
    assert alibi_report["backend"] == "alibi-detect"
    assert (
        alibi_report["drifted_features"]
        == scipy_report["drifted_features"]
        == sorted(shift, key=FEATURES.index)
    )
    assert alibi_report["drifted"] == scipy_report["drifted"] == bool(shift)
    ks = pd.DataFrame(
        {b: [f["ks_stat"] for f in r["features"]] for b, r in reports.items()}, index=FEATURES, dtype=float
    )
    np.testing.assert_allclose(
        ks["alibi-detect"], ks["scipy"], atol=1e-9
    )  # same statistic, p-value method may differ
    assert [f["psi"] for f in alibi_report["features"]] == [f["psi"] for f in scipy_report["features"]]


def test_ksdrift_own_batch_verdict_agrees(bundle_dir: Path) -> None:
    """alibi-detect's own multivariate KSDrift (Bonferroni inside) reaches the same overall verdict."""
    from alibi_detect.cd import KSDrift

    from creditops.artifact import load_bundle

    reference = load_bundle(bundle_dir).reference[FEATURES].to_numpy(dtype=np.float32)
    cd = KSDrift(reference, p_val=0.05, correction="bonferroni")
    for shift in ({}, {"utilisation": 0.8}):
        batch = pd.DataFrame(_batch(22, shift))[FEATURES].to_numpy(dtype=np.float32)
        ours = DriftDetector("drift", bundle_dir)
        ours.load()
        assert (
            bool(cd.predict(batch)["data"]["is_drift"])
            == ours.predict({"instances": _batch(22, shift)})["drifted"]
        )
