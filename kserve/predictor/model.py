"""``CreditPredictor``: the kserve Model scoring credit applications (V1, V2: :mod:`predictor.payload`).

The class only speaks the protocol. Validation and encoding (from the feature contract in the bundle
manifest), decisions, reason codes and the audit records are the core's (``creditops.serving``); online
features come from Feast through ``feast_repo.store``. State (bundle, feature store, audit writer) is
injectable for tests; ``load()`` builds what was not injected, reads the bundle's contract (refusing a bundle
without one), refuses a bundle whose features differ from its feature service as the Feast registry defines
it, and sets ``ready``. The built-in feature registry is never consulted: the manifest is the contract.

Every answered prediction is written to the audit log (awaiting the group-commit writer) before the answer
leaves; if that write fails the request fails with a 503 and no answer is given.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import numpy as np
from kserve.protocol.infer_type import InferRequest, InferResponse

import kserve
from creditops.artifact import Bundle, check_feature_contract, load_bundle
from creditops.errors import BundleError
from creditops.governance.audit import AuditLog, AuditWriter
from creditops.serving import Decisions, RequestError, audit_records, decide, encoder_for, model_version_of
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
        feast_env: ``CREDITOPS_FEAST_*`` backend variables of the online store (default: read from the
            process environment once, at ``load()``; never at import).
        feature_service: the FeatureService this endpoint serves; a bundle trained on another is refused.
            Default: the one the bundle's manifest names (``credit_scoring_v1``, ``<dataset>_v1``, ...).
        audit_url: ``sqlite:///...`` or ``postgresql://...`` audit log.
        audit_anchor: append-only file checkpointing this worker's chain head after every commit.
        audit_max_batch: most records per audit commit (group commit; 1 commits every request alone).
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
        feast_env: Mapping[str, str] | None = None,
        audit_url: str | None = None,
        audit_anchor: str | None = None,
        audit_max_batch: int = 5000,
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
        self.feast_env = feast_env
        self.audit_url = audit_url
        self.audit_anchor = audit_anchor
        self.audit_max_batch = audit_max_batch
        self.feature_service = feature_service
        self.bundle = bundle
        self.store = store
        self.audit = audit
        self.max_batch = max_batch
        self.top_k = top_k
        self.features: list[str] = []
        self.contract: Any = None
        self.encoder: Any = None
        self.layout: payload.Layout | None = None
        self.model_version = ""
        self._lookup: CoalescingLookup | None = None

    def load(self) -> bool:
        """Load the bundle and its contract, the online store (checked against it) and the audit writer."""
        if self.bundle is None:
            self.bundle = load_bundle(self._bundle_path())
        manifest = self.bundle.manifest
        self.contract = self.bundle.contract  # BundleError for an old bundle without a derivable contract
        self.encoder = encoder_for(self.bundle)
        self.layout = payload.Layout.of(self.contract)
        self.feature_service = self.feature_service or manifest.feature_service
        self.features = list(manifest.features)
        self.model_version = model_version_of(self.bundle)
        if self.model_uri and self.tracking_uri:
            from creditops.governance.registry import resolve_version

            number = resolve_version(self.tracking_uri, self.model_uri)
            self.model_version = f"{manifest.model_name}@{number}" if number else self.model_version
        if self.store is None and self.feast_repo:
            from feast_repo.store import open_store  # Feast imports are slow; only when a repo is given

            env = self.feast_env
            if env is None:  # the launcher's CREDITOPS_FEAST_* variables, read once here
                env = {k: v for k, v in os.environ.items() if k.startswith("CREDITOPS_FEAST_")}
            self.store = open_store(self.feast_repo, env=env)
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
            if lookup.join_key != self.contract.join_key:
                raise BundleError(
                    f"feature service {self.feature_service!r} is keyed on {lookup.join_key!r}, the model's "
                    f"contract on {self.contract.join_key!r}"
                )
            lookup([0 if self.layout.int_key else ""])  # opens the online-store connection now
            self._lookup = CoalescingLookup(lookup)
        else:  # raw values only: the manifest's contract is all there is to check requests against
            check_feature_contract(manifest, self.contract.features, self.feature_service)
        if self.audit is None:
            if not self.audit_url:
                raise BundleError("an audit log is required: pass audit_url (every prediction is audited)")
            log = AuditLog.open(self.audit_url, anchor_path=self.audit_anchor)
            self.audit = AuditWriter(log, max_batch=self.audit_max_batch)
        self._warm_up()
        metrics.set_model_info(self.name, self.model_version, manifest.feature_service)
        self.ready = True
        return self.ready

    def _warm_up(self) -> None:
        # The first explanation builds the TreeSHAP tables (numba); pay that at load, not on a request.
        sample = self.bundle.reference[self.features].head(2).to_numpy(dtype="float64")
        if len(sample):
            decide(self.bundle, sample, top_k=self.top_k)

    def _bundle_path(self) -> str:
        if self.bundle_dir:
            return self.bundle_dir
        if self.model_uri:
            from creditops.governance.registry import resolve

            return str(resolve(self.tracking_uri, self.model_uri))
        raise BundleError("no model given: pass bundle_dir or model_uri")

    def can_answer(self, ignore_ready: bool = False) -> bool:
        """Whether a prediction would be answered now: loaded, and the audit writer is running."""
        loaded = self.bundle is not None and bool(self.features)
        writer = self.audit is not None and getattr(self.audit, "alive", True)
        return (ignore_ready or self.ready) and loaded and writer

    async def start(self) -> None:
        """The server's startup: open the audit writer's connection in the serving loop."""
        if self.audit is not None:
            await self.audit.start()

    async def aclose(self) -> None:
        """Stop serving (the server's shutdown): queued records are committed, then the writer closes."""
        self.ready = False
        if self.audit is not None:
            await self.audit.aclose()

    def close(self) -> None:
        """Stop serving from outside the loop (nothing in flight): the audit writer refuses new records."""
        self.ready = False
        if self.audit is not None:
            self.audit.close()

    def v2_model_metadata(self) -> dict[str, Any]:
        """``GET /v2/models/<name>``: the tensors, the served version, and which inputs go together.

        The V2 metadata lists every accepted input tensor; ``parameters.input_layouts`` says which of them
        make one request (send exactly one layout): ``by_id`` (``applicant_id``, features read from the
        online store), ``matrix`` (one ``features`` tensor, columns in ``parameters.feature_order``) or
        ``columns`` (one tensor per feature).
        """
        inputs, outputs = payload.v2_metadata(self.layout, dict(self.contract.dtypes))
        key = self.layout.join_key
        layouts = {
            "by_id": [key],
            "matrix": [payload.FEATURES_TENSOR],
            "columns": list(self.layout.fields),
        }
        return {
            "name": self.name,
            "versions": [self.model_version],
            "platform": "xgboost",
            "inputs": inputs,
            "outputs": outputs,
            "parameters": {"input_layouts": layouts, "feature_order": list(self.features)},
        }

    def get_input_types(self) -> list[dict]:
        """V2 metadata: the accepted input layouts (alternatives, see :mod:`predictor.payload`)."""
        return payload.v2_metadata(self.layout, dict(self.contract.dtypes))[0]

    def get_output_types(self) -> list[dict]:
        """V2 metadata: the output tensors."""
        return payload.v2_metadata(self.layout, dict(self.contract.dtypes))[1]

    async def predict(
        self,
        body: dict | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict | InferResponse:
        """Score a V1 body or a V2 request; audit every row before answering."""
        is_v2 = isinstance(body, InferRequest)
        wanted = self._requested_outputs(body) if is_v2 else None
        request = (
            payload.parse_v2(body, self.features, self.max_batch, self.layout)
            if is_v2
            else payload.parse_v1(body, self.max_batch, self.layout)
        )
        matrix, inputs = await self._features(request)
        decisions = decide(self.bundle, matrix, top_k=self.top_k, model_version=self.model_version)
        predictions = decisions.to_dicts()
        if request.applicant_ids is not None:
            key = self.layout.join_key
            for p, applicant_id in zip(predictions, request.applicant_ids, strict=True):
                p[key] = applicant_id
        await self._audit(decisions, inputs, headers or {})
        metrics.count_decisions(self.name, decisions.decision.tolist())
        if is_v2:
            response = payload.v2_response(self.name, self.model_version, body.id, predictions)
            if wanted:  # every decision is audited whole; the answer carries what the client asked for
                response.outputs = [o for o in response.outputs if o.name in wanted]
            return response
        return payload.v1_response(self.name, self.model_version, predictions)

    def _requested_outputs(self, body: InferRequest) -> set[str] | None:
        """Names in the V2 request's ``outputs`` (None: all), refusing unknown ones before any scoring."""
        if not body.request_outputs:
            return None
        wanted = {o.name for o in body.request_outputs}
        known = {t["name"] for t in self.get_output_types()}
        unknown = sorted(wanted - known)
        if unknown:
            raise bad_request(
                f"outputs: unknown output {', '.join(unknown)} (available: {', '.join(sorted(known))})",
                "unknown_output",
            )
        return wanted

    async def _features(self, request: payload.ScoringRequest) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Model-ready float32 matrix (manifest order) and, per row, the inputs to audit.

        Every path ends in the contract's one range check. Raw values are encoded by the contract and
        audited as sent; by-id rows come from the online store and are audited as the join key + the
        values read.
        """
        try:
            if request.records is not None:
                return self.encoder.encode_records(request.records), request.records
            if request.matrix is not None:
                matrix = self.encoder.check_matrix(request.matrix)
                return matrix, [dict(zip(self.features, row, strict=True)) for row in matrix.tolist()]
        except RequestError as exc:
            raise bad_request(str(exc), "invalid_features") from None
        if self._lookup is None:
            raise bad_request(
                f"this server has no feature store: send feature values instead of {self.layout.join_key}",
                "no_store",
            )
        ids = request.applicant_ids or []
        try:
            values = await self._lookup(ids)
        except Exception as exc:  # Redis down, registry unreadable...: infrastructure, not the caller's fault
            log.error("online feature lookup failed: %s", exc)
            raise FeatureStoreUnavailable(f"feature store unavailable: {exc}") from None
        missing = np.isnan(values).all(axis=1)
        if missing.any():
            unknown = [str(i) for i, m in zip(ids, missing, strict=True) if m]
            shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            key = self.layout.join_key
            raise PredictorError(f"unknown {key}: {shown}", HTTPStatus.NOT_FOUND, "unknown_applicant")
        try:
            matrix = self.encoder.check_matrix(values)
        except RequestError as exc:  # the stored row breaks the contract: refuse it as a raw row would be
            who = f"{self.layout.join_key} {ids[exc.row or 0]}"
            raise PredictorError(
                f"{who}: stored {exc.message}", HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_features"
            ) from None
        key = self.layout.join_key
        inputs = [
            {key: i, **dict(zip(self.features, row, strict=True))}
            for i, row in zip(ids, values.tolist(), strict=True)
        ]
        return matrix, inputs

    async def _audit(
        self, decisions: Decisions, inputs: list[dict[str, Any]], headers: dict[str, str]
    ) -> None:
        caller = (headers.get(CALLER_HEADER) or "anonymous")[:MAX_CALLER_ID]
        route = _route(headers.get(ROUTE_HEADER))
        records = audit_records(decisions, inputs, caller_id=caller, route=route.get("route"))
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
