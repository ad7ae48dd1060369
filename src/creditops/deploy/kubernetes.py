"""Kubernetes target: patch a KServe InferenceService and read its status, in both KServe modes.

**Serverless (Knative)**: the canary is the latest revision; ``spec.predictor.canaryTrafficPercent`` splits
traffic between it (``latestRevision: true``) and the last rolled-out revision (``tag: prev``). Start
sets the new ``storageUri`` and the percent in one patch (a model change without a percent would go to
100 % as soon as the revision is ready); a step patches the percent; promote removes it; roll back sets it
to **0** (removing it would send everything to the bad revision). **Standard (raw)**: ``spec.canary[]``
holds named canary predictors with a ``trafficPercent`` each; the list is atomic, so it is always patched
whole; promote moves the canary predictor into ``spec.predictor``; roll back sets ``canary: []``. Promotion
keeps the predictor it replaced in the annotation ``creditops.io/previous-predictor`` (JSON), so a rollback
after a promotion restores it from the live object, whichever process promoted; the next canary takes the
other of two names (``canary`` / ``canary-b``), since the promoted predictor keeps the canary's name.

Every write is a JSON merge patch (``kubernetes`` 30.1 sends every custom-object patch as
``application/merge-patch+json``, so JSON-patch lists would be mislabelled); after each write the target polls
the status until the KServe controller has observed the new generation and the traffic matches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from creditops.errors import CreditOpsError

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
PREVIOUS_ANNOTATION = "creditops.io/previous-predictor"
"""Standard mode: the predictor spec a promotion replaced (JSON), what a rollback after it restores."""
Mode = Literal["Knative", "Standard"]


class RolloutTimeout(CreditOpsError):
    """The InferenceService did not reach the expected status in time."""


@dataclass(frozen=True)
class IsvcStatus:
    """What the controller reads from ``status`` (both modes; fields of the other mode stay empty).

    Attributes:
        generation: ``metadata.generation``.
        observed_generation: ``status.observedGeneration`` (the controller has reconciled up to it).
        ready: The ``Ready`` condition is ``True``.
        latest_created: ``components.predictor.latestCreatedRevision`` (Serverless).
        latest_ready: ``components.predictor.latestReadyRevision`` (Serverless).
        rolled_out: ``components.predictor.latestRolledoutRevision``: the stable revision (Serverless).
        traffic: ``components.predictor.traffic`` entries.
        canaries: ``canaryStatuses`` entries (Standard).
        canary_ready: The ``CanaryPredictorReady`` condition is ``True`` (Standard).
    """

    generation: int
    observed_generation: int
    ready: bool
    latest_created: str = ""
    latest_ready: str = ""
    rolled_out: str = ""
    traffic: list[dict[str, Any]] = field(default_factory=list)
    canaries: list[dict[str, Any]] = field(default_factory=list)
    canary_ready: bool = False

    @property
    def observed(self) -> bool:
        """The controller has reconciled the latest spec."""
        return self.observed_generation >= self.generation

    def percent(self, *, tag: str | None = None, latest: bool | None = None) -> int | None:
        """Traffic percent of the entry with ``tag`` or ``latestRevision == latest`` (None if absent)."""
        for entry in self.traffic:
            if (tag is not None and entry.get("tag") == tag) or (
                latest is not None and bool(entry.get("latestRevision")) == latest
            ):
                return int(entry.get("percent") or 0)
        return None

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> IsvcStatus:
        """Read the fields above from an InferenceService object."""
        status = obj.get("status") or {}
        predictor = (status.get("components") or {}).get("predictor") or {}
        conditions = {c.get("type"): c.get("status") == "True" for c in status.get("conditions") or []}
        return cls(
            generation=int(obj.get("metadata", {}).get("generation") or 0),
            observed_generation=int(status.get("observedGeneration") or 0),
            ready=conditions.get("Ready", False),
            latest_created=predictor.get("latestCreatedRevision", ""),
            latest_ready=predictor.get("latestReadyRevision", ""),
            rolled_out=predictor.get("latestRolledoutRevision", ""),
            traffic=list(predictor.get("traffic") or []),
            canaries=list(status.get("canaryStatuses") or []),
            canary_ready=conditions.get("CanaryPredictorReady", False),
        )


def replacement_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) turning ``old`` into exactly ``new`` (keys only in ``old`` -> null)."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = replacement_patch(before, value)
            if sub:
                patch[key] = sub
        elif before != value:
            patch[key] = value
    return patch


class KServeTarget:
    """Drives one InferenceService through a canary (a :class:`creditops.deploy.controller.Target`).

    Args:
        api: A ``kubernetes.client.CustomObjectsApi``.
        namespace: The InferenceService's namespace.
        name: Its name.
        candidate_uri: ``storageUri`` of the model to roll out.
        mode: ``Knative`` (Serverless) or ``Standard`` (raw); default: read the deploymentMode annotation.
        canary_name: Predictor name of the canary (Standard mode; DNS-1035); ``<canary_name>-b`` when the
            champion predictor already has this name (it was promoted from the previous canary).
        poll_s: Status polling period.
        timeout_s: Longest wait for the controller to reconcile a write.
        sleep: Injectable sleep.
    """

    def __init__(
        self,
        api: Any,
        namespace: str,
        name: str,
        candidate_uri: str,
        *,
        mode: Mode | None = None,
        canary_name: str = "canary",
        poll_s: float = 0.05,
        timeout_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api = api
        self.namespace, self.name = namespace, name
        self.candidate_uri = candidate_uri
        self.canary_name = canary_name
        self._names = (canary_name, f"{canary_name}-b")  # alternate: a promoted canary keeps its name
        self.poll_s, self.timeout_s, self.sleep = poll_s, timeout_s, sleep
        self._started = False
        self._stable_revision = ""
        self._champion_predictor: dict[str, Any] | None = None
        obj = self.get()
        annotations = obj.get("metadata", {}).get("annotations") or {}
        self.mode: Mode = mode or (
            "Standard" if annotations.get(MODE_ANNOTATION) in ("Standard", "RawDeployment") else "Knative"
        )

    # -- reads ---------------------------------------------------------------------------------------------
    def get(self) -> dict[str, Any]:
        """The InferenceService object."""
        return self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)

    def status(self) -> IsvcStatus:
        """Its parsed status."""
        return IsvcStatus.parse(self.get())

    def ready(self) -> tuple[bool, str]:
        """Serverless: latest created == latest ready; Standard: the canary predictor is ready."""
        s = self.status()
        if self.mode == "Knative":
            ok = s.ready and s.latest_created == s.latest_ready
            return ok, f"latestCreatedRevision={s.latest_created} latestReadyRevision={s.latest_ready}"
        if not self._started:
            return s.ready, "Ready" if s.ready else "not Ready"
        return s.canary_ready, "CanaryPredictorReady" if s.canary_ready else "canary predictor not ready"

    def precheck(self) -> IsvcStatus:
        """Refuse to start a canary on an unsettled service (not ready, unreconciled, mid-rollout)."""
        s = self.status()
        problems = []
        if not s.ready:
            problems.append("Ready is not True")
        if not s.observed:
            problems.append(f"observedGeneration {s.observed_generation} < generation {s.generation}")
        if self.mode == "Knative" and s.latest_created != s.latest_ready:
            problems.append(
                f"latestCreatedRevision {s.latest_created} != latestReadyRevision {s.latest_ready}"
            )
        if self.mode == "Standard" and s.canaries:
            problems.append(f"a canary is already deployed: {[c.get('name') for c in s.canaries]}")
        if problems:
            raise CreditOpsError(
                f"InferenceService {self.namespace}/{self.name} not settled: " + "; ".join(problems)
            )
        return s

    def resume(self) -> None:
        """Continue a canary another process started (a CLI step): take the candidate from the live spec.

        Serverless: the candidate is the predictor's ``storageUri``; Standard: the canary entry's, and the
        champion predictor is the one its model settings are copied from.
        """
        spec = self.get()["spec"]
        self._champion_predictor = dict(spec["predictor"])
        if self.mode == "Standard":
            entries = [c for c in spec.get("canary") or [] if c["predictor"].get("name") in self._names]
            if not entries:
                raise CreditOpsError(
                    f"InferenceService {self.namespace}/{self.name} has no canary in progress"
                )
            self.canary_name = entries[0]["predictor"]["name"]
            self.candidate_uri = self.candidate_uri or entries[0]["predictor"]["model"]["storageUri"]
        elif spec["predictor"].get("canaryTrafficPercent") is None:
            raise CreditOpsError(f"InferenceService {self.namespace}/{self.name} has no canary in progress")
        self.candidate_uri = self.candidate_uri or spec["predictor"].get("model", {}).get("storageUri", "")
        self._started = True

    @property
    def started(self) -> bool:
        """This target has written (or resumed) a canary, so a rollback has something to undo."""
        return self._started

    def in_progress(self) -> bool:
        """A canary is deployed (Serverless: a percent within 1..99; Standard: ``spec.canary`` entries)."""
        spec = self.get()["spec"]
        if self.mode == "Standard":
            return bool(spec.get("canary"))
        percent = spec["predictor"].get("canaryTrafficPercent")
        return percent is not None and 0 < int(percent) < 100

    # -- writes --------------------------------------------------------------------------------------------
    def set_canary(self, weight: int) -> None:
        """Start the canary at ``weight`` % (first call) or move it to ``weight`` %; wait for the status."""
        if not 0 <= weight <= 100:
            raise ValueError(f"canary weight must be within 0..100, got {weight}")
        if not self._started:
            settled = self.precheck()
            self._stable_revision = settled.rolled_out or settled.latest_ready
            self._champion_predictor = dict(self.get()["spec"]["predictor"])
            taken = self._champion_predictor.get("name")
            self.canary_name = self._names[1] if taken == self._names[0] else self._names[0]
        if self.mode == "Knative":
            predictor: dict[str, Any] = {"canaryTrafficPercent": weight}
            if not self._started:
                predictor["model"] = {"storageUri": self.candidate_uri}
            generation = self._patch({"spec": {"predictor": predictor}})
            self._started = True
            self._wait(generation, lambda s: self._knative_split(s, weight), f"canary at {weight} %")
        else:
            generation = self._patch({"spec": {"canary": [self._canary_entry(weight)]}})
            self._started = True
            self._wait(
                generation,
                lambda s: _canary_percent(s, self.canary_name) in (weight, -1),
                f"canary at {weight} %",
            )

    def promote(self) -> None:
        """Make the canary the champion: Serverless removes the percent; Standard moves the predictor."""
        if self.mode == "Knative":
            generation = self._patch({"spec": {"predictor": {"canaryTrafficPercent": None}}})
            latest = self.status().latest_ready

            def done(s: IsvcStatus) -> bool:
                return len(s.traffic) == 1 and s.percent(latest=True) == 100 and s.rolled_out == latest

            self._wait(generation, done, "promotion")
        else:
            old = self.get()["spec"]["predictor"]
            new = self._canary_entry(100)["predictor"]
            kept = {"annotations": {PREVIOUS_ANNOTATION: json.dumps(old, sort_keys=True)}}
            spec = {"predictor": replacement_patch(old, new), "canary": []}
            generation = self._patch({"metadata": kept, "spec": spec})
            self._wait(generation, lambda s: not s.canaries and s.ready, "promotion")

    def rollback(self) -> None:
        """Send all traffic back to the champion (also after a promotion, to the previous champion).

        Serverless: ``canaryTrafficPercent: 0``; after a promotion KServe flips ``latestRolledoutRevision``
        back first and moves ``prev`` on the next reconcile, so the wait covers both. Standard:
        ``canary: []``; with no canary in flight, the predictor the last promotion replaced (its annotation)
        is moved back into ``spec.predictor`` and the annotation removed.
        """
        if self.mode == "Knative":
            generation = self._patch({"spec": {"predictor": {"canaryTrafficPercent": 0}}})
            stable = self._stable_revision

            def done(s: IsvcStatus) -> bool:
                prev_ok = s.percent(tag="prev") == 100 and s.percent(latest=True) == 0
                return prev_ok and (not stable or s.rolled_out == stable)

            self._wait(generation, done, "rollback")
            return
        obj = self.get()
        spec = obj["spec"]
        patch: dict[str, Any] = {"spec": {"canary": []}}
        if not spec.get("canary"):  # nothing in flight: undo the last promotion
            kept = (obj["metadata"].get("annotations") or {}).get(PREVIOUS_ANNOTATION)
            if not kept:
                raise CreditOpsError(
                    f"InferenceService {self.namespace}/{self.name}: nothing to roll back (no canary in "
                    f"progress, no promotion recorded in {PREVIOUS_ANNOTATION})"
                )
            patch["spec"]["predictor"] = replacement_patch(spec["predictor"], json.loads(kept))
            patch["metadata"] = {"annotations": {PREVIOUS_ANNOTATION: None}}
        generation = self._patch(patch)
        self._wait(generation, lambda s: not s.canaries and s.ready, "rollback")

    # -- helpers -------------------------------------------------------------------------------------------
    def _canary_entry(self, weight: int) -> dict[str, Any]:
        model = dict(self._champion_predictor.get("model", {})) if self._champion_predictor else {}
        model["storageUri"] = self.candidate_uri
        return {"trafficPercent": weight, "predictor": {"name": self.canary_name, "model": model}}

    def _knative_split(self, s: IsvcStatus, weight: int) -> bool:
        if s.latest_created != s.latest_ready:
            return True  # a canary that never gets ready gets no traffic; the readiness judge fails it
        return s.percent(latest=True) == weight and s.percent(tag="prev") == 100 - weight

    def _patch(self, body: dict[str, Any]) -> int:
        obj = self.api.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name, body)
        return int(obj["metadata"]["generation"])

    def _wait(self, generation: int, done: Callable[[IsvcStatus], bool], what: str) -> IsvcStatus:
        deadline = time.monotonic() + self.timeout_s
        while True:
            s = self.status()
            if s.observed_generation >= generation and done(s):
                return s
            if time.monotonic() > deadline:
                raise RolloutTimeout(
                    f"{self.namespace}/{self.name}: {what} not reached in {self.timeout_s:.0f} s (observed"
                    f" generation {s.observed_generation}/{generation}, traffic {s.traffic},"
                    f" canaries {s.canaries})"
                )
            self.sleep(self.poll_s)


def _canary_percent(s: IsvcStatus, name: str) -> int | None:
    """The canary's applied percent; -1 when it exists but is not ready (the readiness judge fails it)."""
    for entry in s.canaries:
        if entry.get("name") == name:
            return int(entry.get("trafficPercent") or 0) if entry.get("ready") else -1
    return None
