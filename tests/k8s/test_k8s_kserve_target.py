"""KServeTarget against the fake API server with the real ``kubernetes`` client: exact patches, status reads.

Each test runs start -> step -> promote / rollback (and rollback after promotion) and asserts the patch bodies
the server received, in order, and the status the controller read back, in both KServe modes.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest
from conftest import NAME, NS, isvc
from fake_kserve import KServeEmulator

from creditops.config import CanaryConfig
from creditops.deploy.analysis import ArmWindow
from creditops.deploy.controller import run_canary
from creditops.deploy.kubernetes import (
    GROUP,
    PLURAL,
    PREVIOUS_ANNOTATION,
    VERSION,
    KServeTarget,
    replacement_patch,
)
from creditops.errors import CreditOpsError

OLD, NEW = "s3://models/credit-pd/1", "s3://models/credit-pd/2"
MERGE = "application/merge-patch+json"


def deploy(api: Any, emulator: KServeEmulator, mode: str) -> None:
    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, isvc(mode, OLD))
    deadline = time.monotonic() + 5
    while (
        api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME)["status"].get("observedGeneration")
        != 1
    ):
        assert time.monotonic() < deadline, "the fake controller never reconciled the first deploy"
        time.sleep(0.01)
    emulator.writes.clear()


def patches(emulator: KServeEmulator) -> list[Any]:
    assert all(
        w["verb"] == "patch" and w["type"] == MERGE and w["subresource"] is None for w in emulator.writes
    )
    return [w["body"] for w in emulator.writes]


def test_knative_start_steps_promote_then_rollback_after_promotion(api: Any, cluster: Any) -> None:
    emulator, _ = cluster
    deploy(api, emulator, "Knative")
    target = KServeTarget(api, NS, NAME, NEW)
    assert target.mode == "Knative"
    stable = target.status().rolled_out
    assert stable == "credit-pd-predictor-00001"

    target.set_canary(10)
    s = target.status()
    assert s.latest_created == s.latest_ready == "credit-pd-predictor-00002" and s.rolled_out == stable
    assert s.percent(latest=True) == 10 and s.percent(tag="prev") == 90 and s.observed
    for weight in (25, 50):
        target.set_canary(weight)
        assert target.status().percent(latest=True) == weight
    target.promote()
    s = target.status()
    assert s.traffic == [
        {"revisionName": "credit-pd-predictor-00002", "latestRevision": True, "percent": 100}
    ]
    assert s.rolled_out == "credit-pd-predictor-00002"
    reconciles = emulator.reconciles
    target.rollback()
    s = target.status()
    assert s.rolled_out == stable and s.percent(tag="prev") == 100 and s.percent(latest=True) == 0
    assert [t["revisionName"] for t in s.traffic] == ["credit-pd-predictor-00002", stable]
    assert emulator.reconciles - reconciles == 2  # rolledout flips back, then 'prev' follows

    assert patches(emulator) == [
        {"spec": {"predictor": {"canaryTrafficPercent": 10, "model": {"storageUri": NEW}}}},
        {"spec": {"predictor": {"canaryTrafficPercent": 25}}},
        {"spec": {"predictor": {"canaryTrafficPercent": 50}}},
        {"spec": {"predictor": {"canaryTrafficPercent": None}}},
        {"spec": {"predictor": {"canaryTrafficPercent": 0}}},
    ]


def test_knative_rollback_during_the_canary_sets_zero(api: Any, cluster: Any) -> None:
    emulator, _ = cluster
    deploy(api, emulator, "Knative")
    target = KServeTarget(api, NS, NAME, NEW)
    target.set_canary(10)
    target.rollback()
    s = target.status()
    assert (
        s.percent(latest=True) == 0
        and s.percent(tag="prev") == 100
        and s.rolled_out == "credit-pd-predictor-00001"
    )
    spec = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME)["spec"]["predictor"]
    assert spec["canaryTrafficPercent"] == 0  # never removed: that would send 100 % to the bad revision
    assert patches(emulator)[-1] == {"spec": {"predictor": {"canaryTrafficPercent": 0}}}


def test_knative_canary_that_never_gets_ready_fails_readiness(api: Any, cluster: Any) -> None:
    emulator, _ = cluster
    emulator.never_ready.add(NEW)
    deploy(api, emulator, "Knative")
    target = KServeTarget(api, NS, NAME, NEW)
    target.set_canary(10)
    ok, why = target.ready()
    s = target.status()
    assert (
        not ok
        and s.latest_created == "credit-pd-predictor-00002"
        and s.latest_ready == "credit-pd-predictor-00001"
    )
    assert "latestReadyRevision=credit-pd-predictor-00001" in why
    with pytest.raises(CreditOpsError, match="latestCreatedRevision"):
        target.precheck()  # a second rollout may not start on top of an unsettled service
    target.rollback()
    assert target.status().percent(tag="prev") == 100


def test_standard_start_steps_promote_then_rollback_after_promotion(api: Any, cluster: Any) -> None:
    emulator, _ = cluster
    deploy(api, emulator, "Standard")
    target = KServeTarget(api, NS, NAME, NEW, canary_name="canary")
    assert target.mode == "Standard"
    model_new = {"modelFormat": {"name": "xgboost"}, "storageUri": NEW}

    target.set_canary(10)
    s = target.status()
    assert s.canaries == [{"name": "canary", "ready": True, "trafficPercent": 10}] and s.canary_ready
    assert s.traffic == [{"name": "primary", "percent": 90}]
    target.set_canary(50)
    assert target.status().canaries[0]["trafficPercent"] == 50
    target.promote()
    obj = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME)
    assert obj["spec"]["predictor"] == {"name": "canary", "model": model_new} and obj["spec"]["canary"] == []
    assert target.status().canaries == []
    champion = isvc("Standard", OLD)["spec"]["predictor"]
    assert json.loads(obj["metadata"]["annotations"][PREVIOUS_ANNOTATION]) == champion
    target.rollback()
    obj = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME)
    assert obj["spec"]["predictor"] == champion and PREVIOUS_ANNOTATION not in obj["metadata"]["annotations"]
    with pytest.raises(CreditOpsError, match="nothing to roll back"):
        target.rollback()  # the promotion is undone once; a second rollback has no champion to restore

    kept = {"annotations": {PREVIOUS_ANNOTATION: json.dumps(champion, sort_keys=True)}}
    assert patches(emulator) == [
        {"spec": {"canary": [{"trafficPercent": 10, "predictor": {"name": "canary", "model": model_new}}]}},
        {"spec": {"canary": [{"trafficPercent": 50, "predictor": {"name": "canary", "model": model_new}}]}},
        {
            "metadata": kept,
            "spec": {"predictor": {"name": "canary", "model": {"storageUri": NEW}}, "canary": []},
        },
        {
            "spec": {"canary": [], "predictor": {"name": "primary", "model": {"storageUri": OLD}}},
            "metadata": {"annotations": {PREVIOUS_ANNOTATION: None}},
        },
    ]


def test_standard_next_canary_after_a_promotion_takes_the_other_name(api: Any, cluster: Any) -> None:
    emulator, _ = cluster
    deploy(api, emulator, "Standard")
    first = KServeTarget(api, NS, NAME, NEW)
    first.set_canary(10)
    first.promote()  # the champion predictor is now named "canary"
    third = "s3://models/credit-pd/3"
    second = KServeTarget(api, NS, NAME, third)
    second.set_canary(20)
    spec = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME)["spec"]
    assert spec["predictor"]["name"] == "canary" and [c["predictor"]["name"] for c in spec["canary"]] == [
        "canary-b"
    ]
    assert second.ready() == (True, "CanaryPredictorReady")
    second.promote()
    spec = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME)["spec"]
    assert spec["predictor"]["name"] == "canary-b" and spec["predictor"]["model"]["storageUri"] == third


def test_standard_rollback_during_the_canary_empties_the_list(api: Any, cluster: Any) -> None:
    emulator, _ = cluster
    emulator.never_ready.add(NEW)
    deploy(api, emulator, "Standard")
    target = KServeTarget(api, NS, NAME, NEW)
    target.set_canary(10)
    assert target.ready() == (False, "canary predictor not ready")
    assert target.status().canaries == [{"name": "canary", "ready": False, "trafficPercent": 0}]
    target.rollback()
    assert target.status().canaries == [] and patches(emulator)[-1] == {"spec": {"canary": []}}


def test_weights_outside_0_100_are_refused_before_any_patch(api: Any, cluster: Any) -> None:
    emulator, _ = cluster
    deploy(api, emulator, "Knative")
    with pytest.raises(ValueError, match="0..100"):
        KServeTarget(api, NS, NAME, NEW).set_canary(150)
    assert emulator.writes == []


def test_replacement_patch_turns_old_into_new() -> None:
    old = {"name": "a", "model": {"storageUri": "x", "runtime": "r"}, "minReplicas": 1}
    new = {"name": "b", "model": {"storageUri": "y"}}
    assert replacement_patch(old, new) == {
        "minReplicas": None,
        "name": "b",
        "model": {"runtime": None, "storageUri": "y"},
    }


class Window:
    def __init__(self, shift: float) -> None:
        self.rng, self.shift = np.random.default_rng(3), shift

    def _arm(self, n: int, shift: float) -> ArmWindow:
        scores = np.clip(self.rng.beta(2, 8, n) + shift, 0, 1)
        return ArmWindow(
            n, 0, list(self.rng.lognormal(2, 0.2, n)), list(scores), int((scores < 0.3).sum()), 0
        )

    def window(self, since: float) -> tuple[ArmWindow, ArmWindow]:
        return self._arm(400, self.shift), self._arm(1000, 0.0)


@pytest.mark.parametrize("mode", ["Knative", "Standard"])
@pytest.mark.parametrize(("shift", "outcome"), [(0.0, "promoted"), (0.25, "rolled_back")])
def test_controller_drives_the_inference_service(
    api: Any, cluster: Any, mode: str, shift: float, outcome: str
) -> None:
    emulator, _ = cluster
    deploy(api, emulator, mode)
    cfg = CanaryConfig(steps=[10, 50, 100], interval_s=0.02, check_every_s=0.01, threshold=1)
    result = run_canary(KServeTarget(api, NS, NAME, NEW), Window(shift), cfg, auto_promote=True)
    assert result.outcome == outcome
    status = KServeTarget(api, NS, NAME, NEW).status()
    if mode == "Knative":
        assert status.percent(latest=True) == (100 if outcome == "promoted" else 0)
    else:
        spec = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME)["spec"]
        assert spec["predictor"]["model"]["storageUri"] == (NEW if outcome == "promoted" else OLD)
        assert spec["canary"] == []
