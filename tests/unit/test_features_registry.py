from __future__ import annotations

import inspect

import pytest

from creditops.features import registry
from creditops.features.build import feature_function
from creditops.features.registry import FEATURES, GROUPS, feature_directions, get_feature, model_feature_names


def test_registry_size_and_unique_names():
    names = model_feature_names()
    assert 40 <= len(names) <= 50
    assert len(set(names)) == len(names)


def test_groups_are_contiguous_in_service_order():
    # The FeatureService lists one projection per view; registry order must equal group-by-group order.
    groups = [f.group for f in FEATURES]
    assert groups == sorted(groups, key=GROUPS.index)
    assert set(groups) == set(GROUPS)


@pytest.mark.parametrize("feature", FEATURES, ids=lambda f: f.name)
def test_feature_definition_is_complete(feature):
    assert feature.dtype in ("float", "int")
    assert feature.direction in (-1, 0, 1)
    assert feature.description and feature.reason
    low, high = feature.valid_range
    assert low is None or high is None or low <= high
    fn = feature_function(feature.name)
    assert fn.__name__ == feature.name
    assert fn.__module__ == f"creditops.features.{feature.group}"
    assert inspect.getdoc(fn)


@pytest.mark.parametrize("group", GROUPS)
def test_every_public_function_in_a_group_module_is_a_registered_feature(group):
    module = __import__(f"creditops.features.{group}", fromlist=["_"])
    public = {
        name
        for name, obj in vars(module).items()
        if inspect.isfunction(obj) and obj.__module__ == module.__name__ and not name.startswith("_")
    }
    assert public == {f.name for f in registry.features_in(group)}


def test_lookups():
    assert feature_directions()["credit_score"] == -1
    assert feature_directions()["debt_to_income"] == 1
    assert get_feature("income").group == "identity"
    assert registry.FEATURE_SERVICE == "credit_scoring_v1"
    with pytest.raises(KeyError, match="nope"):
        get_feature("nope")
