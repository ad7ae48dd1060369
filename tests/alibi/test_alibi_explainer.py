"""alibi TreeShap (the ``alibi`` explainer backend) agrees with the default TreeSHAP backend on one bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xgboost

from creditops.artifact import load_bundle
from explainer.model import CreditExplainer


def test_env_is_the_alibi_env() -> None:
    import alibi
    import alibi_detect

    assert np.__version__.startswith("1.")
    assert (alibi.__version__, alibi_detect.__version__, xgboost.__version__) == ("0.9.6", "0.13.0", "3.0.5")


def test_bundle_from_the_core_env_loads(bundle_dir: Path) -> None:
    written_by = json.loads((bundle_dir / "manifest.json").read_text())["library_versions"]["xgboost"]
    bundle = load_bundle(bundle_dir)
    assert bundle.booster.num_features() == len(bundle.features)
    print(f"model.ubj written by xgboost {written_by}, read by {xgboost.__version__}")


@pytest.fixture(scope="module")
def explainers(bundle_dir: Path) -> dict[str, CreditExplainer]:
    out = {
        backend: CreditExplainer("credit-pd", bundle_dir, backend=backend)
        for backend in ("treeshap", "alibi")
    }
    for model in out.values():
        assert model.load() and model.ready
    return out


def test_alibi_contributions_match_treeshap(explainers: dict[str, CreditExplainer], bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    rows = bundle.reference[bundle.features].head(50).to_dict(orient="records")
    rows.append({"utilisation": 0.99, "income_k": 12.0, "noise": 3.0, "num_late": 6})
    rows.append({"utilisation": 0.5, "income_k": None, "noise": 0.0, "num_late": 0})
    ours, theirs = (explainers[b].explain({"instances": rows}) for b in ("treeshap", "alibi"))
    assert theirs["backend"] == "alibi"
    for mine, alibis in zip(ours["explanations"], theirs["explanations"], strict=True):
        np.testing.assert_allclose(
            [alibis["contributions"][f] for f in bundle.features],
            [mine["contributions"][f] for f in bundle.features],
            atol=1e-5,
        )
        assert alibis["base_value"] == pytest.approx(mine["base_value"], abs=1e-5)
        assert alibis["base_value"] + sum(alibis["contributions"].values()) == pytest.approx(
            mine["margin"], abs=1e-4
        )
        assert [r["feature"] for r in alibis["reasons"]] == [r["feature"] for r in mine["reasons"]]
        assert alibis["pd"] == mine["pd"]
