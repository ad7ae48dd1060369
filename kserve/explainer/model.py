"""``CreditExplainer``: a kserve.Model that answers ``:explain`` for a creditops bundle.

Requests carry the contract's raw fields (as the predictor's do); the decision core
(``creditops.serving.decide``) gives the PD, the contributions and the reasons, so an explanation's reasons
are exactly the ones the predictor served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from kserve.protocol.infer_type import InferRequest

import kserve
from creditops.artifact import Bundle, load_bundle
from creditops.serving import decide, encoder_for
from explainer.backends import BACKENDS, ContributionBackend
from explainer.payload import encode, frame_from_payload


class CreditExplainer(kserve.Model):
    """Per-feature contributions, base value, PD and top adverse-action reasons for each instance.

    Args:
        name: Model name in the URL (``/v1/models/<name>:explain``); normally the predictor's name.
        bundle_dir: Directory of the model bundle (model.ubj, manifest.json, reference.parquet).
        backend: ``treeshap`` (default, core env) or ``alibi`` (alibi env only).
        top_k: Reasons per instance.
    """

    def __init__(self, name: str, bundle_dir: str | Path, backend: str = "treeshap", top_k: int = 4) -> None:
        super().__init__(name)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {backend!r}")
        self.bundle_dir = Path(bundle_dir)
        self.backend = backend
        self.top_k = top_k
        self.bundle_: Bundle | None = None
        self.encoder_: Any = None
        self.contributions_: ContributionBackend | None = None

    def load(self) -> bool:
        """Load and validate the bundle, build the backend, then mark the model ready.

        Raises:
            creditops.errors.BundleError: The bundle is missing, corrupt or inconsistent.
        """
        self.bundle_ = load_bundle(self.bundle_dir)
        self.encoder_ = encoder_for(self.bundle_)  # BundleError for a bundle without a contract
        self.contributions_ = BACKENDS[self.backend](self.bundle_)
        self.ready = True
        return self.ready

    def explain(self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None) -> dict:
        """Explain every instance of a V1 (``instances``) or V2 tensor payload.

        Returns:
            ``{"model_name", "backend", "units": "log-odds", "explanations": [{"pd", "margin",
            "base_value", "contributions": {model column: value}, "field_contributions": {raw field:
            value}, "reasons": [{"feature", "value", "contribution", "reason"}]}]}``;
            ``base_value + sum(contributions) == margin`` and the calibrated ``pd`` is what the
            predictor serves.

        Raises:
            kserve.errors.InvalidInput: Malformed request (HTTP 400 naming the field).
        """
        if self.bundle_ is None or self.contributions_ is None:
            raise RuntimeError(f"model {self.name} is not loaded")
        bundle, encoder = self.bundle_, self.encoder_
        fields = encoder.fields
        X = encode(encoder, frame_from_payload(payload, fields, frozenset(encoder.categorical)))
        decisions = decide(bundle, X, top_k=self.top_k)
        # treeshap: the core engine's exact contributions (the predictor's, equal to xgboost's pred_contribs);
        # alibi: alibi's own, shown beside the core's reasons so the two can be compared.
        contribs = decisions.contributions if self.backend == "treeshap" else self.contributions_(X)
        field_contribs = decisions.reason_map.field_contributions(np.asarray(contribs))
        features = bundle.features
        return {
            "model_name": bundle.manifest.model_name,
            "backend": self.backend,
            "units": "log-odds",
            "explanations": [
                {
                    "pd": float(decisions.pd[i]),
                    "margin": float(decisions.margin[i]),
                    "base_value": float(contribs[i, -1]),
                    "contributions": dict(zip(features, map(float, contribs[i, :-1]), strict=True)),
                    "field_contributions": dict(zip(fields, map(float, field_contribs[i]), strict=True)),
                    "reasons": [r.to_dict() for r in reasons],
                }
                for i, reasons in enumerate(decisions.reasons())
            ],
        }
