"""An OpenAPI 3.0 document for the predictor's own endpoints, served at ``/predictor/openapi.json``.

kserve's ``/openapi.json`` describes every route generically (the V1 body is untyped); this one states the
real request and answer shapes of :mod:`predictor.payload`, so clients and property-based tests
(schemathesis) can use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from creditops.features.registry import get_feature


def _feature_schema(name: str) -> dict[str, Any]:
    feature = get_feature(name)
    schema: dict[str, Any] = {"type": "integer" if feature.dtype == "int" else "number"}
    low, high = feature.valid_range
    if low is not None:
        schema["minimum"] = low
    if high is not None:
        schema["maximum"] = high
    schema["description"] = feature.description
    return schema


def openapi_document(model_name: str, features: Sequence[str], max_batch: int) -> dict[str, Any]:
    """The OpenAPI document for a predictor serving ``model_name``."""
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
            "feature": {"type": "string"},
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
            "applicant_id": {"type": "integer"},
            "pd": {"type": "number", "minimum": 0, "maximum": 1},
            "score": {"type": "number"},
            "decision": {"type": "string", "enum": ["approve", "review", "decline"]},
            "reasons": {"type": "array", "items": reason},
            "model_version": {"type": "string"},
        },
    }
    by_id = {
        "type": "object",
        "required": ["applicant_id"],
        "additionalProperties": False,
        "properties": {"applicant_id": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}},
    }
    by_features = {
        "type": "object",
        "required": list(features),
        "additionalProperties": False,
        "properties": {f: _feature_schema(f) for f in features},
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
    tensor_names = ["applicant_id", "features", *features]
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
            "datatype": {"type": "string", "enum": ["INT64", "INT32", "FP32", "FP64"]},
            "parameters": {"type": "object"},
            "data": {"type": "array", "items": {"type": "number"}},
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
