"""Feature content hashes; a redefined feature under the same service version is refused at apply; v1 + v2."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from creditops.config import FeastConfig
from creditops.data.synthetic import generate_world
from creditops.features import identity, registry
from creditops.features.build import build_feature_tables
from creditops.features.versioning import (
    FeatureVersionError,
    check_manifest,
    feature_hashes,
    next_version,
    pin_manifest,
    pinned_hashes,
)
from feast_repo import store as fs


def _redefine(monkeypatch: pytest.MonkeyPatch, name: str, **changes: object) -> None:
    features = tuple(dataclasses.replace(f, **changes) if f.name == name else f for f in registry.FEATURES)
    monkeypatch.setattr(registry, "FEATURES", features)


def test_every_feature_has_a_stable_hash() -> None:
    first, second = feature_hashes(), feature_hashes()
    assert first == second
    assert list(first)[: len(registry.FEATURES)] == registry.model_feature_names()
    assert len(set(first.values())) == len(first)  # no two definitions collide


@pytest.mark.parametrize(
    "change",
    [
        {"description": "Declared monthly income."},
        {"direction": 0},
        {"valid_range": (0, 1e7)},
        {"dtype": "int"},
        {"reason": "Income"},
    ],
)
def test_a_changed_field_changes_only_that_features_hash(monkeypatch, change) -> None:
    before = feature_hashes()
    _redefine(monkeypatch, "income", **change)
    after = feature_hashes()
    assert [n for n in before if before[n] != after[n]] == ["income"]


def test_a_changed_function_body_changes_the_hash(monkeypatch) -> None:
    before = feature_hashes(["income"])

    def income(applications):  # same name, other computation
        return applications["income"] * 12

    monkeypatch.setattr(identity, "income", income)
    assert feature_hashes(["income"]) != before


def test_next_version() -> None:
    assert next_version("credit_scoring_v1") == "credit_scoring_v2"
    assert next_version("credit_scoring_v9") == "credit_scoring_v10"
    assert next_version("german_credit") == "german_credit_v2"


def test_manifest_pins_hashes_and_a_redefined_feature_is_refused(monkeypatch) -> None:
    from creditops.artifact import Calibration, Manifest, ScoreScaling, Thresholds

    manifest = Manifest(
        model_name="m",
        feature_service="credit_scoring_v1",
        features=["income", "num_dependents"],
        dtypes={"income": "float", "num_dependents": "int"},
        directions={"income": -1, "num_dependents": 0},
        reasons={},
        calibration=Calibration.identity(),
        score_scaling=ScoreScaling(base_score=600, base_odds=50, pdo=20),
        thresholds=Thresholds(approve_below_pd=0.1, decline_at_or_above_pd=0.3),
        target="defaulted",
    )
    pinned = pin_manifest(manifest)
    assert pinned.params["feature_hashes"] == feature_hashes(["income", "num_dependents"])
    check_manifest(pinned, feature_hashes())  # same definitions: accepted
    _redefine(monkeypatch, "num_dependents", valid_range=(0, 30))
    with pytest.raises(FeatureVersionError, match=r"\[.num_dependents.\]"):
        check_manifest(pinned, feature_hashes())


def test_apply_refuses_a_changed_definition_and_serves_v1_beside_v2(tmp_path, run_id, monkeypatch) -> None:
    world = generate_world(40, seed=5)
    store = fs.open_store(config=FeastConfig(project=f"creditops_test_{run_id}_ver"), data_dir=tmp_path / "d")
    try:
        fs.write_offline(build_feature_tables(world), store)
        fs.apply(store)
        v1_pins = pinned_hashes(store.get_feature_service("credit_scoring_v1").tags)
        assert v1_pins == feature_hashes(registry.model_feature_names())
        fs.apply(store)  # unchanged definitions: re-applying is fine

        # a contract change Feast's schema does not see (a description change would alter the views' fields,
        # which Feast then refuses to project for v1)
        _redefine(monkeypatch, "credit_score", valid_range=(300, 900))
        with pytest.raises(FeatureVersionError, match="credit_score: definition changed.*credit_scoring_v2"):
            fs.apply(store)
        assert pinned_hashes(store.get_feature_service("credit_scoring_v1").tags) == v1_pins

        fs.apply(store, bump=True)
        services = {s.name: s for s in store.list_feature_services()}
        assert {"credit_scoring_v1", "credit_scoring_v2"} <= set(services)
        assert pinned_hashes(services["credit_scoring_v1"].tags) == v1_pins
        v2_pins = pinned_hashes(services["credit_scoring_v2"].tags)
        assert [n for n in v1_pins if v1_pins[n] != v2_pins[n]] == ["credit_score"]

        fs.materialize(store, world.as_of.to_pydatetime())
        ids = [{"applicant_id": int(i)} for i in world.applications["applicant_id"].head(5)]
        rows = [
            store.get_online_features(features=store.get_feature_service(name), entity_rows=ids).to_dict()
            for name in ("credit_scoring_v1", "credit_scoring_v2")
        ]
        for feature in registry.model_feature_names():
            assert np.array_equal(np.array(rows[0][feature], float), np.array(rows[1][feature], float))
        assert not np.isnan(np.array(rows[1]["credit_score"], float)).any()
    finally:
        fs.teardown(store)
