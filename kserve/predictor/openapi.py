"""An OpenAPI 3.0 document for the predictor's own endpoints, served at ``/predictor/openapi.json``.

kserve's ``/openapi.json`` describes every route generically (the V1 body is untyped); this one states the
real request and answer shapes of :mod:`predictor.payload`, so clients and property-based tests
(schemathesis) can use it. Everything model-specific comes from the feature contract in the bundle manifest
(raw fields, dtypes, categories, bounds, join key), so a dataset-spec model is described as well as the
built-in one.
"""

from __future__ import annotations

from typing import Any

from creditops.features.contract import FeatureContract


def _field_schema(contract: FeatureContract, name: str) -> dict[str, Any]:
    """Schema of one raw field: a number within its bounds, or a categorical value; null = missing."""
    description = contract.descriptions.get(name, "")
    if name in contract.encodings:
        schema: dict[str, Any] = {"type": "string", "enum": list(contract.encodings[name])}
        description = description or f"category of {name}"
    else:
        low, high = contract.bounds(name)
        schema = {"type": "integer" if contract.dtypes[name] == "int" else "number"}
        schema["minimum"], schema["maximum"] = low, high
    schema["nullable"] = True
    if description:
        schema["description"] = description
    return schema


def openapi_document(model_name: str, contract: FeatureContract, max_batch: int) -> dict[str, Any]:
    """The OpenAPI document for a predictor serving ``model_name`` with this feature contract."""
    fields = contract.raw_fields
    key = contract.join_key
    key_schema = (
        {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
        if contract.join_key_dtype == "int"
        else {"type": "string", "minLength": 1}
    )
    error = {"$ref": "#/components/schemas/Error"}
    errors = {
        str(code): {"description": text, "content": {"application/json": {"schema": error}}}
        for code, text in (
            (400, "invalid request (the message names the field)"),
            (404, "unknown applicant id or model"),
            (413, "batch larger than the maximum batch size"),
            (422, "malformed inference request"),
            (503, "audit log unavailable or model not ready: nothing was served"),
        )
    }
    name_param = {
        "name": "model_name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [model_name]},
    }
    reason = {
        "type": "object",
        "required": ["feature", "reason", "contribution"],
        "properties": {
            "feature": {"type": "string", "enum": list(fields)},
            "value": {"nullable": True},
            "reason": {"type": "string"},
            "contribution": {"type": "number"},
        },
    }
    prediction = {
        "type": "object",
        "required": ["prediction_id", "pd", "score", "decision", "reasons", "model_version"],
        "properties": {
            "prediction_id": {"type": "string"},
            key: key_schema,
            "pd": {"type": "number", "minimum": 0, "maximum": 1},
            "score": {"type": "number"},
            "decision": {"type": "string", "enum": ["approve", "review", "decline"]},
            "reasons": {"type": "array", "items": reason},
            "model_version": {"type": "string"},
        },
    }
    by_id = {
        "type": "object",
        "required": [key],
        "additionalProperties": False,
        "properties": {key: key_schema},
    }
    by_features = {
        "type": "object",
        "required": list(fields),
        "additionalProperties": False,
        "properties": {f: _field_schema(contract, f) for f in fields},
    }
    v1_request = {
        "type": "object",
        "required": ["instances"],
        "additionalProperties": False,
        "properties": {
            "instances": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_batch,
                "items": {"oneOf": [by_id, by_features]},
            }
        },
    }
    tensor_names = [key, "features", *fields]
    v2_input = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string", "enum": tensor_names},
            "shape": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0},
                "minItems": 1,
                "maxItems": 2,
            },
            "datatype": {"type": "string", "enum": ["INT64", "INT32", "FP32", "FP64", "BYTES"]},
            "parameters": {"type": "object"},
            "data": {"type": "array", "items": {"oneOf": [{"type": "number"}, {"type": "string"}]}},
        },
    }
    v2_request = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "minItems": 1, "items": v2_input},
        },
    }
    v2_output = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string"},
            "data": {"type": "array"},
        },
    }
    ok = "application/json"
    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"creditops predictor ({model_name})",
            "version": "1",
            "description": "Probability of default, score, decision and reason codes; every answer is "
            "audited. Header X-Caller-Id names the caller in the audit log (default 'anonymous').",
        },
        "paths": {
            "/v1/models/{model_name}:predict": {
                "post": {
                    "operationId": "predict_v1",
                    "parameters": [name_param, {"$ref": "#/components/parameters/CallerId"}],
                    "requestBody": {"required": True, "content": {ok: {"schema": v1_request}}},
                    "responses": {
                        "200": {
                            "description": "scored",
                            "content": {
                                ok: {
                                    "schema": {
                                        "type": "object",
                                        "required": ["predictions"],
                                        "properties": {
                                            "model_name": {"type": "string"},
                                            "model_version": {"type": "string"},
                                            "predictions": {"type": "array", "items": prediction},
                                        },
                                    }
                                }
                            },
                        },
                        **errors,
                    },
                }
            },
            "/v2/models/{model_name}/infer": {
                "post": {
                    "operationId": "infer_v2",
                    "parameters": [name_param, {"$ref": "#/components/parameters/CallerId"}],
                    "requestBody": {"required": True, "content": {ok: {"schema": v2_request}}},
                    "responses": {
                        "200": {
                            "description": "outputs prediction_id, pd, score, decision, reasons (JSON)",
                            "content": {
                                ok: {
                                    "schema": {
                                        "type": "object",
                                        "required": ["model_name", "outputs"],
                                        "properties": {
                                            "id": {"type": "string"},
                                            "model_name": {"type": "string"},
                                            "model_version": {"type": "string"},
                                            "outputs": {"type": "array", "items": v2_output},
                                        },
                                    }
                                }
                            },
                        },
                        **errors,
                    },
                }
            },
            "/v2/models/{model_name}": {
                "get": {
                    "operationId": "model_metadata_v2",
                    "parameters": [name_param],
                    "responses": {"200": {"description": "model metadata (inputs are alternatives)"}},
                }
            },
            "/v2/models/{model_name}/ready": {
                "get": {
                    "operationId": "model_ready_v2",
                    "parameters": [name_param],
                    "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
                }
            },
            "/v2/health/ready": {
                "get": {"operationId": "server_ready_v2", "responses": {"200": {"description": "ready"}}}
            },
        },
        "components": {
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}}}},
            "parameters": {
                "CallerId": {
                    "name": "X-Caller-Id",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 128},
                }
            },
        },
    }
