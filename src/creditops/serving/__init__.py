"""The one decision path: contract validation and encoding, ``decide(bundle, frame)``, reasons, audit records.

Used alike by the predictor, batch scoring, the explainer and the bench.
"""

from creditops.serving.core import (
    Decisions,
    audit_records,
    decide,
    encoder_for,
    model_version_of,
    new_prediction_ids,
)
from creditops.serving.encode import Encoder, RequestError
from creditops.serving.reasons import ReasonCode, ReasonMap, top_reasons

__all__ = [
    "Decisions",
    "Encoder",
    "ReasonCode",
    "ReasonMap",
    "RequestError",
    "audit_records",
    "decide",
    "encoder_for",
    "model_version_of",
    "new_prediction_ids",
    "top_reasons",
]
