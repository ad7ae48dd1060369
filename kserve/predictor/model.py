"""``CreditPredictor``: the kserve Model scoring credit applications (V1, V2: :mod:`predictor.payload`).

The class only speaks the protocol. Feature validation, scoring, reason codes and the audit log are the
core's (``creditops.scoring``, ``creditops.governance``); online features come from Feast through
``feast_repo.store``. State (bundle, feature store, audit writer) is injectable for tests; ``load()`` builds
what was not injected, refuses a bundle whose features differ from its feature service as the Feast registry
defines it (or, without a store, as the built-in registry does for ``credit_scoring_v1``), and sets ``ready``.

Every answered prediction is written to the audit log (awaiting the group-commit writer) before the answer
leaves; if that write fails the request fails with a 503 and no answer is given.
"""

from __future__ import annotations

import logging
import os
import re
from http import HTTPStatus
from typing import Any

import numpy as np
from kserve.protocol.infer_type import InferRequest, InferResponse

import kserve
from creditops.artifact import Bundle, check_feature_contract, load_bundle
from creditops.errors import BundleError
from creditops.features.registry import FEATURE_SERVICE, model_feature_names
from creditops.governance.audit import AuditLog, AuditRecord, AuditWriter, utc_now_iso
from creditops.scoring import Decision, RequestError, coerce_features, model_version_of, score_frame
from predictor import metrics, payload
from predictor.errors import AuditUnavailable, FeatureStoreUnavailable, PredictorError, bad_request
from predictor.online import CoalescingLookup

log = logging.getLogger(__name__)
CALLER_HEADER = "x-caller-id"
DEFAULT_MAX_BATCH = 1000
MAX_CALLER_ID = 256
# Set by the rollout router (creditops.deploy.router): which arm of a canary / shadow / A/B test this request
# was routed to, recorded in each row's audit output so the log shows which version and arm served it.
ROUTE_HEADER = "x-creditops-route"
_ROUTE = re.compile(r"^(?:[a-z_]{1,16}=[A-Za-z0-9_.@:-]{1,64})(?:;[a-z_]{1,16}=[A-Za-z0-9_.@:-]{1,64}){0,3}$")


class CreditPredictor(kserve.Model):
    """Probability of default, score, decision and reason codes for applicant ids or raw features.

    Args:
        name: model name on the endpoint paths (``/v1/models/<name>:predict``).
        bundle_dir: a model bundle directory (``creditops.artifact``), or
        model_uri: ``models:/<name>@<alias>`` resolved through the MLflow registry at ``tracking_uri``.
        feast_repo: Feast repo path; without it (and without ``store``) only raw features are accepted.
        feature_service: the FeatureService this endpoint serves; a bundle trained on another is refused.
            Default: the one the bundle's manifest names (``credit_scoring_v1``, ``<dataset>_v1``, ...).
        audit_url: ``sqlite:///...`` or ``postgresql://...`` audit log.
        bundle, store, audit: already-built state (tests inject these instead of the paths above).
        max_batch: largest accepted batch (more rows -> 413).
        top_k: reason codes per answer.
    """

    def __init__(
        self,
        name: str,
        *,
        bundle_dir: str | None = None,
        model_uri: str | None = None,
        tracking_uri: str | None = None,
        feast_repo: str | None = None,
        audit_url: str | None = None,
        feature_service: str | None = None,
        bundle: Bundle | None = None,
        store: Any | None = None,
        audit: AuditWriter | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        top_k: int = 4,
    ):
        super().__init__(name)
        self.bundle_dir = bundle_dir
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.feast_repo = feast_repo
        self.audit_url = audit_url
        self.feature_service = feature_service
        self.bundle = bundle
        self.store = store
        self.audit = audit
        self.max_batch = max_batch
        self.top_k = top_k
        self.features: list[str] = []
        self.model_version = ""
        self._lookup: CoalescingLookup | None = None

    def load(self) -> bool:
        """Load the bundle (refusing a feature-contract mismatch), the online store and the audit writer."""
        if self.bundle is None:
            self.bundle = load_bundle(self._bundle_path())
        manifest = self.bundle.manifest
        self.feature_service = self.feature_service or manifest.feature_service
        self.features = list(manifest.features)
        self.model_version = model_version_of(self.bundle)
        if self.model_uri and self.tracking_uri:
            from creditops.governance.registry import resolve_version

            number = resolve_version(self.tracking_uri, self.model_uri)
            self.model_version = f"{manifest.model_name}@{number}" if number else self.model_version
        if self.store is None and self.feast_repo:
            from feast_repo.store import open_store  # Feast imports are slow; only when a repo is given

            # Backends come from the CREDITOPS_FEAST_* variables the launcher sets (read once, at load).
            overrides = {k: v for k, v in os.environ.items() if k.startswith("CREDITOPS_FEAST_")}
            self.store = open_store(self.feast_repo, env=overrides)
        if self.store is not None:
            from feast.errors import FeastObjectNotFoundException

            from feast_repo.store import OnlineFeatures

            try:
                lookup = OnlineFeatures(self.store, service=self.feature_service)
            except FeastObjectNotFoundException as exc:
                raise BundleError(
                    f"the Feast repo has no feature service {self.feature_service!r} for this model: {exc}"
                ) from None
            check_feature_contract(manifest, lookup.features, self.feature_service)
            lookup([0])  # opens the online-store connection now rather than on the first request
            self._lookup = CoalescingLookup(lookup)
        elif self.feature_service == FEATURE_SERVICE:
            check_feature_contract(manifest, model_feature_names(), FEATURE_SERVICE)
        else:  # raw features only: the manifest is all there is to check requests against
            check_feature_contract(manifest, manifest.features, self.feature_service)
        if self.audit is None:
            if not self.audit_url:
                raise BundleError("an audit log is required: pass audit_url (every prediction is audited)")
            self.audit = AuditWriter(AuditLog.open(self.audit_url))
        self._ranges = dict(manifest.valid_ranges)
        self._warm_up()
        metrics.set_model_info(self.name, self.model_version, manifest.feature_service)
        self.ready = True
        return self.ready

    def _warm_up(self) -> None:
        # The first explanation builds the TreeSHAP tables (numba); pay that at load, not on a request.
        sample = self.bundle.reference[self.features].head(2)
        if len(sample):
            score_frame(self.bundle, sample.reset_index(drop=True), top_k=self.top_k)

    def _bundle_path(self) -> str:
        if self.bundle_dir:
            return self.bundle_dir
        if self.model_uri:
            from creditops.governance.registry import resolve

            return str(resolve(self.tracking_uri, self.model_uri))
        raise BundleError("no model given: pass bundle_dir or model_uri")

    def get_input_types(self) -> list[dict]:
        """V2 metadata: the accepted input layouts (alternatives, see :mod:`predictor.payload`)."""
        return payload.v2_metadata(self.features, dict(self.bundle.manifest.dtypes))[0]

    def get_output_types(self) -> list[dict]:
        """V2 metadata: the output tensors."""
        return payload.v2_metadata(self.features, dict(self.bundle.manifest.dtypes))[1]

    async def predict(
        self,
        body: dict | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict | InferResponse:
        """Score a V1 body or a V2 request; audit every row before answering."""
        is_v2 = isinstance(body, InferRequest)
        request = (
            payload.parse_v2(body, self.features, self.max_batch)
            if is_v2
            else payload.parse_v1(body, self.max_batch)
        )
        matrix, inputs = await self._features(request)
        decisions = score_frame(self.bundle, matrix, top_k=self.top_k, model_version=self.model_version)
        predictions = [self._answer(d) for d in decisions]
        if request.applicant_ids is not None:
            for p, applicant_id in zip(predictions, request.applicant_ids, strict=True):
                p["applicant_id"] = applicant_id
        await self._audit(inputs, decisions, predictions, headers or {})
        metrics.count_decisions(self.name, [p["decision"] for p in predictions])
        if is_v2:
            return payload.v2_response(self.name, self.model_version, body.id, predictions)
        return payload.v1_response(self.name, self.model_version, predictions)

    async def _features(self, request: payload.ScoringRequest) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Model-ready matrix (manifest order) and, per row, the inputs to audit.

        Raw values are validated by the core and audited as sent; by-id rows come from the online store and
        are audited as ``applicant_id`` + the values read.
        """
        if request.records is not None:
            try:
                frame = coerce_features(request.records, self.features, self._ranges)
            except RequestError as exc:
                raise bad_request(str(exc), "invalid_features") from None
            return frame.to_numpy(), list(request.records)
        if self._lookup is None:
            raise bad_request(
                "this server has no feature store: send feature values instead of applicant_id", "no_store"
            )
        ids = request.applicant_ids or []
        try:
            matrix = await self._lookup(ids)
        except Exception as exc:  # Redis down, registry unreadable...: infrastructure, not the caller's fault
            log.error("online feature lookup failed: %s", exc)
            raise FeatureStoreUnavailable(f"feature store unavailable: {exc}") from None
        missing = np.isnan(matrix).all(axis=1)
        if missing.any():
            unknown = [str(i) for i, m in zip(ids, missing, strict=True) if m]
            shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            raise PredictorError(f"unknown applicant_id: {shown}", HTTPStatus.NOT_FOUND, "unknown_applicant")
        inputs = [
            {
                "applicant_id": i,
                **{f: (None if v != v else v) for f, v in zip(self.features, row, strict=True)},
            }
            for i, row in zip(ids, matrix.tolist(), strict=True)
        ]
        return matrix, inputs

    def _answer(self, decision: Decision) -> dict[str, Any]:
        return {
            "prediction_id": decision.prediction_id,
            "pd": float(decision.pd),
            "score": float(decision.score),
            "decision": decision.decision,
            "reasons": [
                {
                    "feature": r.feature,
                    "value": _plain(r.value),
                    "reason": r.reason,
                    "contribution": float(r.contribution),
                }
                for r in decision.reasons
            ],
            "model_version": decision.model_version,
        }

    async def _audit(
        self,
        inputs: list[dict[str, Any]],
        decisions: list[Decision],
        predictions: list[dict[str, Any]],
        headers: dict[str, str],
    ) -> None:
        caller = (headers.get(CALLER_HEADER) or "anonymous")[:MAX_CALLER_ID]
        route = _route(headers.get(ROUTE_HEADER))
        now = utc_now_iso()
        model_name = self.bundle.manifest.model_name
        records = [
            AuditRecord(
                prediction_id=d.prediction_id,
                ts=now,
                model_name=model_name,
                model_version=d.model_version,
                inputs=row,
                output={"pd": p["pd"], "score": p["score"], **route},
                explanation=p["reasons"],
                decision=d.decision,
                caller_id=caller,
            )
            for d, p, row in zip(decisions, predictions, inputs, strict=True)
        ]
        try:
            await self.audit.write(records)
        except Exception as exc:  # any failure of the audit store fails the request, by design
            log.error("audit write failed, refusing %d prediction(s): %s", len(records), exc)
            raise AuditUnavailable(f"audit log unavailable, prediction not served: {exc}") from None


def _route(value: str | None) -> dict[str, Any]:
    """``{"route": {...}}`` from the router's ``arm=canary;rollout=...`` header ({} without one)."""
    if not value:
        return {}
    if not _ROUTE.match(value):
        raise bad_request(f"header {ROUTE_HEADER} must be key=value pairs joined by ';'", "invalid_route")
    return {"route": dict(pair.split("=", 1) for pair in value.split(";"))}


def _plain(value: Any) -> Any:
    """A JSON-safe Python scalar (numpy -> Python, NaN -> None)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
