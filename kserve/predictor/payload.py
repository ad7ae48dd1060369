"""Decode V1 and V2 (Open Inference Protocol) payloads into a :class:`ScoringRequest`; encode the answers.

Only the protocol lives here. Values are validated and encoded by the core from the model's contract
(``creditops.serving.Encoder``); this module checks the envelope: its shape, the batch size and the ids.
Field names come from the contract in the bundle manifest: its join key (``applicant_id`` for the built-in
world, a dataset spec's id column otherwise) and its raw fields (numeric features, and each categorical once,
sent as its value, e.g. ``"purpose": "car"``).

V1 ``POST /v1/models/<name>:predict``::

    {"instances": [{"<join key>": 123}, ...]}                      # features from the Feast online store
    {"instances": [{"<field>": <number | category | null>, ... every raw field}]}  # raw values

answer ``{"model_name", "model_version", "predictions": [{"prediction_id", "pd", "score", "decision",
"reasons": [{"feature", "value", "reason", "contribution"}], "model_version", ("applicant_id")}]}``.

V2 ``POST /v2/models/<name>/infer``: exactly one of these input layouts per request, ``n`` rows:

* ``<join key>``: INT64 (or INT32/UINT*; BYTES for a string key), shape ``[n]`` or ``[n, 1]``;
* ``features``: FP32 or FP64, shape ``[n, n_features]``, the encoded model columns in manifest order;
* one input per raw field, named after it, shape ``[n]`` or ``[n, 1]``: numeric datatype for a numeric
  field, BYTES (the category values) for a categorical.

Outputs (shape ``[n]`` each): ``prediction_id`` BYTES, ``pd`` FP64, ``score`` FP64, ``decision`` BYTES,
``reasons`` BYTES (one JSON array per row, the V1 reason objects); ``model_version`` is the response's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import numpy as np
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from predictor.errors import PredictorError, bad_request

APPLICANT_ID = "applicant_id"
FEATURES_TENSOR = "features"
INT64_MAX = 2**63 - 1
_INT_TYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_NUMERIC_TYPES = _INT_TYPES | {"FP32", "FP64"}


@dataclass(frozen=True)
class Layout:
    """What a model's requests look like (from its feature contract)."""

    join_key: str
    int_key: bool
    fields: list[str]
    categorical: frozenset[str]
    features: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, contract: Any) -> Layout:
        """The layout of a :class:`creditops.features.contract.FeatureContract`."""
        return cls(
            join_key=contract.join_key,
            int_key=contract.join_key_dtype == "int",
            fields=list(contract.raw_fields),
            categorical=frozenset(contract.encodings),
            features=list(contract.features),
        )


@dataclass(frozen=True)
class ScoringRequest:
    """What to score: ids (features from the online store), raw records, or an encoded model matrix."""

    applicant_ids: list[Any] | None = None
    records: list[dict[str, Any]] | None = None
    matrix: np.ndarray | None = None

    @property
    def size(self) -> int:
        """Number of rows."""
        if self.matrix is not None:
            return len(self.matrix)
        return len(self.applicant_ids if self.applicant_ids is not None else self.records or [])


def _check_batch(n: int, max_batch: int) -> None:
    if n == 0:
        raise bad_request("empty request: give at least one instance", "empty_batch")
    if n > max_batch:
        raise PredictorError(
            f"batch of {n} rows exceeds the maximum batch size of {max_batch}",
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "batch_too_large",
        )


def _applicant_id(value: Any, where: str, layout: Layout | None = None) -> Any:
    key = layout.join_key if layout else APPLICANT_ID
    if layout is not None and not layout.int_key:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value):
            raise bad_request(f"{where}: {key} must be a non-empty string", "bad_id")
        return str(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"{where}: {key} must be an integer, got {type(value).__name__}", "bad_id")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise bad_request(f"{where}: {key} must be an integer, got {value!r}", "bad_id")
        value = int(value)
    if not 0 <= value <= INT64_MAX:
        raise bad_request(f"{where}: {key} {value} is out of range (0..2^63-1)", "bad_id")
    return value


def parse_v1(body: Any, max_batch: int, layout: Layout | None = None) -> ScoringRequest:
    """Decode a V1 ``{"instances": [...]}`` body (``layout`` default: the built-in ``applicant_id`` key)."""
    key = layout.join_key if layout else APPLICANT_ID
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object with an 'instances' list", "malformed_request")
    extra = sorted(set(body) - {"instances"})
    if extra:
        raise bad_request(f"unknown field(s) in request: {', '.join(map(str, extra))}", "malformed_request")
    if "instances" not in body:
        raise bad_request("missing field 'instances'", "malformed_request")
    instances = body["instances"]
    if not isinstance(instances, list):
        raise bad_request("'instances' must be a list", "malformed_request")
    _check_batch(len(instances), max_batch)
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict):
            raise bad_request(
                f"instance {i} must be a JSON object, got {type(inst).__name__}", "malformed_request"
            )
    by_id = [key in inst for inst in instances]
    if any(by_id):
        ids = []
        for i, inst in enumerate(instances):
            if len(inst) != 1 or key not in inst:
                raise bad_request(
                    f"instance {i}: give either {{'{key}': <id>}} alone or all feature values, "
                    f"not {sorted(map(str, inst))}"[:300],
                    "malformed_request",
                )
            ids.append(_applicant_id(inst[key], f"instance {i}", layout))
        return ScoringRequest(applicant_ids=ids)
    return ScoringRequest(records=instances)


def _flat_numbers(data: Any, name: str, strings: bool = False) -> list[Any]:
    """Flatten V2 JSON tensor data (flat or nested row-major), refusing anything but numbers (or strings)."""
    out: list[Any] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif strings:
            if not isinstance(item, str | bytes):
                raise bad_request(
                    f"input '{name}': BYTES values must be strings, got {type(item).__name__}", "wrong_type"
                )
            out.append(item.decode("utf-8", "replace") if isinstance(item, bytes) else item)
        elif isinstance(item, bool) or not isinstance(item, int | float):
            raise bad_request(
                f"input '{name}': values must be numbers, got {type(item).__name__}", "wrong_type"
            )
        else:
            out.append(item)
    return out


def _tensor(inp: Any, name: str, strings: bool = False) -> tuple[list[Any], list[int]]:
    """Values (Python numbers or strings, row-major) and shape of one V2 input, checked against its shape."""
    if strings and inp.datatype != "BYTES":
        raise bad_request(
            f"input '{name}': categorical, datatype must be BYTES, got {inp.datatype}", "wrong_type"
        )
    if not strings and inp.datatype not in _NUMERIC_TYPES:
        raise bad_request(f"input '{name}': datatype {inp.datatype} is not numeric", "wrong_type")
    shape = list(inp.shape)
    if any((not isinstance(d, int)) or d < 0 for d in shape) or len(shape) not in (1, 2):
        raise bad_request(f"input '{name}': shape {shape} must be [n] or [n, k] with k, n >= 0", "bad_shape")
    size = math.prod(shape)
    if getattr(inp, "_raw_data", None) is not None:
        try:
            values = inp.as_numpy().reshape(-1).tolist()
        except (ValueError, TypeError) as exc:
            raise bad_request(f"input '{name}': {exc}", "bad_shape") from None
        if strings:
            values = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
    else:
        values = _flat_numbers(inp.data, name, strings)
    if len(values) != size:
        raise bad_request(f"input '{name}': {len(values)} values do not fill shape {shape}", "bad_shape")
    if inp.datatype in _INT_TYPES and any(isinstance(v, float) for v in values):
        raise bad_request(f"input '{name}': datatype {inp.datatype} needs integer values", "wrong_type")
    return values, shape


def _column(inp: Any, name: str, strings: bool = False) -> list[Any]:
    values, shape = _tensor(inp, name, strings)
    if len(shape) == 2 and shape[1] != 1:
        raise bad_request(f"input '{name}': shape {shape} must be [n] or [n, 1]", "bad_shape")
    return values


def parse_v2(
    request: InferRequest, features: Sequence[str], max_batch: int, layout: Layout | None = None
) -> ScoringRequest:
    """Decode a V2 inference request in one of the three layouts (see the module docstring).

    Args:
        request: The decoded V2 request.
        features: The model's ordered (encoded) columns.
        max_batch: Largest accepted batch.
        layout: The contract's request layout (default: numeric fields = ``features``, key ``applicant_id``).
    """
    layout = layout or Layout(APPLICANT_ID, True, list(features), frozenset(), list(features))
    key = layout.join_key
    inputs = list(request.inputs or [])
    names = [inp.name for inp in inputs]
    if not inputs:
        raise bad_request("the request has no inputs", "malformed_request")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise bad_request(f"duplicate input(s): {', '.join(dupes)}", "malformed_request")
    if key in names:
        if len(names) > 1:
            others = ", ".join(n for n in names if n != key)
            raise bad_request(f"input '{key}' must come alone, also got: {others}", "malformed_request")
        inp = inputs[0]
        if layout.int_key and inp.datatype not in _INT_TYPES:
            raise bad_request(f"input '{key}': datatype must be INT64, got {inp.datatype}", "wrong_type")
        values = _column(inp, key, strings=not layout.int_key)
        _check_batch(len(values), max_batch)
        return ScoringRequest(
            applicant_ids=[_applicant_id(v, f"row {i}", layout) for i, v in enumerate(values)]
        )
    if FEATURES_TENSOR in names and FEATURES_TENSOR not in layout.fields:
        if len(names) > 1:
            others = ", ".join(n for n in names if n != FEATURES_TENSOR)
            raise bad_request(f"input 'features' must come alone, also got: {others}", "malformed_request")
        values, shape = _tensor(inputs[0], FEATURES_TENSOR)
        if len(shape) != 2 or shape[1] != len(features):
            raise bad_request(
                f"input 'features': shape must be [n, {len(features)}] (manifest feature order), got {shape}",
                "bad_shape",
            )
        _check_batch(shape[0], max_batch)
        matrix = np.asarray(values, dtype=np.float64).reshape(shape[0], len(features))
        return ScoringRequest(matrix=matrix)
    fields = layout.fields
    missing = [f for f in fields if f not in names]
    extra = [n for n in names if n not in set(fields)]
    if extra:
        raise bad_request(f"unknown input(s): {', '.join(extra)}", "extra_field")
    if missing:
        raise bad_request(f"missing input(s): {', '.join(missing)}", "missing_field")
    columns = {inp.name: _column(inp, inp.name, inp.name in layout.categorical) for inp in inputs}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise bad_request(f"inputs have different row counts: {sorted(lengths)}", "bad_shape")
    n = lengths.pop()
    _check_batch(n, max_batch)
    return ScoringRequest(records=[{f: columns[f][i] for f in fields} for i in range(n)])


def v1_response(model_name: str, model_version: str, predictions: list[dict[str, Any]]) -> dict[str, Any]:
    """The V1 answer."""
    return {"model_name": model_name, "model_version": model_version, "predictions": predictions}


def v2_response(
    model_name: str, model_version: str, request_id: str | None, predictions: list[dict[str, Any]]
) -> InferResponse:
    """The V2 answer: one output tensor per answer field (reasons as JSON strings)."""
    n = len(predictions)

    def output(name: str, datatype: str, values: list[Any]) -> InferOutput:
        out = InferOutput(name=name, shape=[n], datatype=datatype)
        dtype = object if datatype == "BYTES" else np.float64
        out.set_data_from_numpy(np.asarray(values, dtype=dtype), binary_data=False)
        return out

    outputs = [
        output("prediction_id", "BYTES", [p["prediction_id"] for p in predictions]),
        output("pd", "FP64", [p["pd"] for p in predictions]),
        output("score", "FP64", [p["score"] for p in predictions]),
        output("decision", "BYTES", [p["decision"] for p in predictions]),
        output("reasons", "BYTES", [json.dumps(p["reasons"], separators=(",", ":")) for p in predictions]),
    ]
    return InferResponse(
        response_id=request_id or predictions[0]["prediction_id"],
        model_name=model_name,
        model_version=model_version,
        infer_outputs=outputs,
    )


def v2_metadata(layout: Layout, dtypes: dict[str, str]) -> tuple[list[dict], list[dict]]:
    """Tensor metadata for ``GET /v2/models/<name>`` (inputs: the three layouts, as alternatives)."""
    inputs = [
        {"name": layout.join_key, "datatype": "INT64" if layout.int_key else "BYTES", "shape": [-1]},
        {"name": FEATURES_TENSOR, "datatype": "FP32", "shape": [-1, len(layout.features)]},
    ]
    for f in layout.fields:
        if f in layout.categorical:
            datatype = "BYTES"
        else:
            datatype = "INT64" if str(dtypes.get(f, "float")).startswith("int") else "FP64"
        inputs.append({"name": f, "datatype": datatype, "shape": [-1]})
    outputs = [
        {"name": "prediction_id", "datatype": "BYTES", "shape": [-1]},
        {"name": "pd", "datatype": "FP64", "shape": [-1]},
        {"name": "score", "datatype": "FP64", "shape": [-1]},
        {"name": "decision", "datatype": "BYTES", "shape": [-1]},
        {"name": "reasons", "datatype": "BYTES", "shape": [-1]},
    ]
    return inputs, outputs
