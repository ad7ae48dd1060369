from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from creditops.features import request
from creditops.features.registry import model_feature_names

# Hand-checked: 12 000 over 12 months at 1 %/month -> 120 / (1 - 1.01**-12) = 1066.1854641 a month.
PAYMENT_12K_12M = 1066.1854641400993


def _columns(**overrides: list) -> dict[str, list]:
    base = {
        "request_amount": [12_000.0],
        "request_term_months": [12],
        "income": [120_000.0],
        "requested_amount": [6_000.0],
    }
    return base | overrides


def test_annuity_payment_hand_checked() -> None:
    payment = request.annuity_payment(np.array([12_000.0, 1_200.0]), np.array([12.0, 12.0]))
    assert payment.tolist() == pytest.approx([PAYMENT_12K_12M, PAYMENT_12K_12M / 10])
    assert request.annuity_payment(np.array([1_200.0]), np.array([12.0]), rate=0.0).tolist() == [100.0]


@pytest.mark.parametrize(
    ("function", "columns", "expected"),
    [
        (request.requested_loan_to_income, _columns(), 0.1),
        (request.requested_loan_to_income, _columns(income=[0.0]), 0.0),
        (request.requested_payment_to_income, _columns(), PAYMENT_12K_12M / 10_000.0),
        (request.requested_payment_to_income, _columns(income=[0.0]), 0.0),
        (request.requested_payment_to_income, _columns(request_term_months=[0]), 0.0),
        (request.requested_amount_vs_declared, _columns(), 2.0),
        (request.requested_amount_vs_declared, _columns(requested_amount=[0.0]), 1.0),
    ],
    ids=[
        "lti",
        "lti_zero_income",
        "pti",
        "pti_zero_income",
        "pti_zero_term",
        "vs_declared",
        "vs_zero_declared",
    ],
)
def test_function_values(function, columns, expected) -> None:
    (value,) = function(columns)
    assert value == pytest.approx(expected)
    assert math.isfinite(value)


@pytest.mark.parametrize("function", [getattr(request, f.name) for f in request.REQUEST_FEATURES])
def test_missing_input_is_nan_not_neutral(function) -> None:
    (value,) = function(_columns(income=[None], requested_amount=[None], request_amount=[None]))
    assert math.isnan(value)


def test_dict_and_frame_inputs_agree() -> None:
    columns = _columns(
        request_amount=[12_000.0, 5_000.0, 1_000.0],
        request_term_months=[12, 0, 36],
        income=[120_000.0, 0.0, 30_000.0],
        requested_amount=[6_000.0, 5_000.0, 0.0],
    )
    frame = pd.DataFrame(columns, index=[10, 11, 12])
    from_dict = request.compute_request_features(columns)
    from_frame = request.compute_request_features(frame)
    assert list(from_dict) == request.request_feature_names()
    for name in request.request_feature_names():
        assert isinstance(from_dict[name], list)
        assert from_frame[name].name == name and list(from_frame[name].index) == [10, 11, 12]
        assert from_frame[name].tolist() == pytest.approx(from_dict[name])


def test_definitions_are_distinct_from_the_model_contract() -> None:
    # a request input named like a feature would be silently replaced by the stored value in Feast
    inputs = {i.name for i in request.REQUEST_INPUTS}
    outputs = set(request.request_feature_names())
    assert not (inputs | outputs) & set(model_feature_names())
    assert not inputs & outputs
    for feature in request.REQUEST_FEATURES:
        assert callable(getattr(request, feature.name))
        assert feature.reason and feature.description and feature.direction in (-1, 0, 1)
