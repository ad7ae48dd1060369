"""Request payloads (V1 ``instances`` or a V2 tensor request) to a frame of the contract's raw fields.

Shared by the explainer and the drift detector; the fields come from the feature contract in the bundle
manifest (numeric features, and each categorical once, as its value: ``"purpose": "car"``), and the frame
is then validated and encoded by the core (:func:`encode`, i.e. ``creditops.serving.Encoder``: the
predictor's policy). Every rejection is ``kserve.errors.InvalidInput`` (HTTP 400) and names the offending
field and row. ``null`` is accepted and means missing: XGBoost routes missing values natively and some
features are legitimately missing (e.g. months since the last delinquency, when never).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest


def encode(encoder: Any, frame: pd.DataFrame) -> np.ndarray:
    """The float32 model matrix of a raw-field frame through the contract (first bad row -> InvalidInput)."""
    M, bad, reasons = encoder.encode_frame(frame)
    if bad.any():
        raise InvalidInput(f"instances[{int(np.flatnonzero(bad)[0])}]: {reasons[0]}")
    return M


def frame_from_payload(
    payload: dict[str, Any] | InferRequest | bytes,
    features: Sequence[str],
    categorical: frozenset[str] | set[str] = frozenset(),
) -> pd.DataFrame:
    """Validate a request's envelope and types; one column per field, in ``features`` order.

    Args:
        payload: V1 ``{"instances": [{field: value, ...}, ...]}`` (rows may also be lists in field
            order), or a V2 ``InferRequest`` with either one tensor per field (shape ``[n]`` or ``[n, 1]``;
            BYTES for a categorical) or, for a model without categoricals, a single tensor of shape
            ``[n, len(features)]`` in field order.
        features: The contract's raw fields, in order (``contract.raw_fields``).
        categorical: Which of them are categorical (values are categories, not numbers).

    Returns:
        DataFrame: float64 numeric columns (NaN where the request had ``null``), object categoricals.

    Raises:
        InvalidInput: Anything malformed, naming the field (and row).
    """
    if isinstance(payload, InferRequest):
        return _frame_from_v2(payload, features, categorical)
    if isinstance(payload, bytes | str):  # kserve hands over the raw body when Content-Type is not JSON
        try:
            payload = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"request body is not JSON ({exc})") from exc
    if not isinstance(payload, dict) or "instances" not in payload:
        raise InvalidInput('expected a JSON object with "instances": a list of {feature: value} objects')
    instances = payload["instances"]
    if not isinstance(instances, list) or not instances:
        raise InvalidInput('"instances" must be a non-empty list')
    rows = [_row(i, instance, features, categorical) for i, instance in enumerate(instances)]
    frame = pd.DataFrame(rows, columns=list(features), dtype=object)
    numeric = [f for f in features if f not in categorical]
    frame[numeric] = frame[numeric].astype(float)
    return frame


def _row(i: int, instance: Any, features: Sequence[str], categorical: frozenset[str] | set[str]) -> list[Any]:
    if isinstance(instance, list):
        if len(instance) != len(features):
            raise InvalidInput(
                f"instances[{i}]: expected {len(features)} values in feature order, got {len(instance)}"
            )
        return [
            _value(f"instances[{i}].{name}", value, name in categorical)
            for name, value in zip(features, instance, strict=True)
        ]
    if not isinstance(instance, dict):
        raise InvalidInput(
            f"instances[{i}]: expected an object of feature values, got {type(instance).__name__}"
        )
    missing = [name for name in features if name not in instance]
    if missing:
        raise InvalidInput(f"instances[{i}]: missing feature {missing[0]!r} ({len(missing)} missing)")
    extra = sorted(set(instance) - set(features))
    if extra:
        raise InvalidInput(f"instances[{i}]: unknown field {extra[0]!r} (not a model feature)")
    return [_value(f"instances[{i}].{name}", instance[name], name in categorical) for name in features]


def _value(field: str, value: Any, categorical: bool) -> Any:
    if not categorical:
        return _number(field, value)
    if value is not None and (isinstance(value, bool) or not isinstance(value, str | Real)):
        raise InvalidInput(f"{field}: expected a category (string) or null, got {value!r}"[:200])
    return value


def _number(field: str, value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidInput(f"{field}: expected a number or null, got {value!r}")
    number = float(value)
    if math.isinf(number):
        raise InvalidInput(f"{field}: must be finite, got {number}")
    return number


def _frame_from_v2(
    request: InferRequest, features: Sequence[str], categorical: frozenset[str] | set[str]
) -> pd.DataFrame:
    inputs = {infer_input.name: infer_input for infer_input in request.inputs}
    if len(inputs) == 1 and not set(inputs) & set(features) and not categorical:
        ((name, tensor),) = inputs.items()
        array = _tensor(name, tensor)
        if array.ndim != 2 or array.shape[1] != len(features):
            raise InvalidInput(
                f"input {name!r}: expected shape [n, {len(features)}], got {list(array.shape)}"
            )
        columns = {feature: array[:, j] for j, feature in enumerate(features)}
    else:
        missing = [f for f in features if f not in inputs]
        if missing:
            raise InvalidInput(f"missing input tensor for feature {missing[0]!r} ({len(missing)} missing)")
        extra = sorted(set(inputs) - set(features))
        if extra:
            raise InvalidInput(f"unknown input tensor {extra[0]!r} (not a model feature)")
        columns = {}
        for feature in features:
            array = _tensor(feature, inputs[feature], feature in categorical)
            if array.ndim == 2 and array.shape[1] == 1:
                array = array[:, 0]
            if array.ndim != 1:
                raise InvalidInput(
                    f"input {feature!r}: expected shape [n] or [n, 1], got {list(array.shape)}"
                )
            columns[feature] = array
        lengths = {len(column) for column in columns.values()}
        if len(lengths) != 1:
            raise InvalidInput(f"input tensors have different lengths: {sorted(lengths)}")
    frame = pd.DataFrame(columns, columns=list(features))
    if frame.empty:
        raise InvalidInput("the request has no rows")
    numeric = [f for f in features if f not in categorical]
    bad = np.isinf(frame[numeric].to_numpy(dtype=float))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InvalidInput(f"input {numeric[col]!r} row {row}: must be finite")
    return frame


def _tensor(name: str, tensor: Any, categorical: bool = False) -> np.ndarray:
    if categorical:
        if tensor.datatype != "BYTES":
            raise InvalidInput(f"input {name!r}: categorical, datatype must be BYTES, got {tensor.datatype}")
        values = np.asarray(tensor.as_numpy(), dtype=object)
        return np.vectorize(
            lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v, otypes=[object]
        )(values)
    try:
        return np.asarray(tensor.as_numpy(), dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"input {name!r}: expected a numeric tensor ({exc})") from exc
