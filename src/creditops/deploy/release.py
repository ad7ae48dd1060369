"""Environments and the promotion gate: staging smoke tests, recorded approvals, MLflow alias moves.

``dev`` is wherever a model is trained and registered (alias ``challenger``); ``staging`` gets every
registered challenger on its own endpoint and runs :func:`smoke_test` against it; ``prod`` is reached only
by a rollout, and its champion changes only through :func:`promote_to_champion`, which needs a recorded
approval (who, when, why) unless ``deploy.auto_promote`` is set. Every step is a row of the deployment
history.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from creditops.deploy.history import DeploymentHistory, Event
from creditops.errors import CreditOpsError

CHAMPION, CHALLENGER = "champion", "challenger"
DECISIONS = {"approve", "decline", "review", "refer"}


class ApprovalRequired(CreditOpsError):
    """Promotion to champion without a recorded approval (and auto-promotion is off)."""


@dataclass(frozen=True)
class SmokeReport:
    """Outcome of the staging smoke tests against one endpoint."""

    ok: bool
    checks: dict[str, bool]
    detail: dict[str, str]

    def failures(self) -> list[str]:
        """Names of the failed checks with their detail."""
        return [f"{k}: {self.detail.get(k, '')}" for k, ok in self.checks.items() if not ok]


def contract_rows(contract: Any, n: int = 3) -> list[dict[str, Any]]:
    """``n`` valid requests from a feature contract: every feature, inside its valid range, of its dtype."""
    rows = []
    for i in range(n):
        row: dict[str, Any] = {}
        for name in contract.features:
            low, high = contract.valid_ranges.get(name, (None, None))
            lo = 0.0 if low is None else float(low)
            hi = lo + 100.0 if high is None else float(high)
            value = lo + (hi - lo) * (i + 1) / (n + 1)
            row[name] = int(value) if contract.dtypes.get(name) == "int" else round(value, 4)
        rows.append(row)
    return rows


def smoke_test(
    base_url: str, model_name: str, rows: Sequence[Mapping[str, Any]], timeout_s: float = 30.0
) -> SmokeReport:
    """Integration smoke tests of a staging endpoint: ready, scores valid rows, refuses a bad one with a 4xx.

    Args:
        base_url: The endpoint (``http://host:port``).
        model_name: The model name on its paths.
        rows: A few valid requests' rows (raw features or ``{"applicant_id": ...}``).
        timeout_s: Per-request timeout.
    """
    checks: dict[str, bool] = {}
    detail: dict[str, str] = {}
    with httpx.Client(base_url=base_url, timeout=timeout_s) as client:
        r = client.get(f"/v2/models/{model_name}/ready")
        checks["ready"], detail["ready"] = r.status_code == 200, f"HTTP {r.status_code}"
        r = client.post(
            f"/v1/models/{model_name}:predict",
            json={"instances": list(rows)},
            headers={"X-Caller-Id": "staging-smoke"},
        )
        preds = r.json().get("predictions", []) if r.status_code == 200 else []
        valid = len(preds) == len(rows) and all(
            0.0 <= float(p.get("pd", -1)) <= 1.0 and p.get("decision") in DECISIONS and p.get("prediction_id")
            for p in preds
        )
        checks["predict"], detail["predict"] = (
            valid,
            f"HTTP {r.status_code}, {len(preds)}/{len(rows)} valid answers",
        )
        r = client.post(f"/v1/models/{model_name}:predict", json={"instances": [{"no_such_feature": 1}]})
        checks["bad_request_is_4xx"] = 400 <= r.status_code < 500
        detail["bad_request_is_4xx"] = f"HTTP {r.status_code}"
    return SmokeReport(all(checks.values()), checks, detail)


def actor_name(actor: str | None = None) -> str:
    """Who acts: the given name, ``$CREDITOPS_ACTOR``, or the OS user."""
    return actor or os.environ.get("CREDITOPS_ACTOR") or getpass.getuser()


def approve(
    history: DeploymentHistory, model_name: str, version: str | int, *, actor: str, reason: str
) -> Event:
    """Record an approval to promote ``version`` to production champion (who, when, why)."""
    if not actor.strip() or not reason.strip():
        raise CreditOpsError("an approval needs a non-empty actor and reason")
    return history.record("prod", model_name, version, "approved", actor=actor, reason=reason)


def set_alias(tracking_uri: str, model_name: str, alias: str, version: str | int | None) -> None:
    """Point an MLflow alias at a version (``None`` deletes it)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    if version is None:
        try:
            client.delete_registered_model_alias(model_name, alias)
        except Exception:  # nosec B110  # the alias may already be gone; deleting is idempotent here
            pass
    else:
        client.set_registered_model_alias(model_name, alias, str(version))


def promote_to_champion(
    history: DeploymentHistory,
    tracking_uri: str,
    model_name: str,
    version: str | int,
    *,
    auto: bool = False,
    reason: str = "",
    details: Mapping[str, Any] | None = None,
) -> Event:
    """Make ``version`` the production champion: check the approval, move the aliases, record the history.

    Raises:
        ApprovalRequired: no approval is recorded for the version and ``auto`` is off.
    """
    from creditops.governance.registry import alias_version, promote

    approval = history.approval(model_name, version)
    if approval is None and not auto:
        raise ApprovalRequired(
            f"{model_name} v{version} has no recorded approval: run `creditops deploy approve"
            f" --version {version}"
            " --by NAME --reason TEXT` (or set deploy.auto_promote)"
        )
    actor = approval.actor if approval else "auto-promote"
    why = reason or (approval.reason if approval else "canary analysis passed")
    previous = promote(tracking_uri, model_name, version, promoted_by=actor, reason=why)
    if alias_version(tracking_uri, model_name, CHALLENGER) == str(version):
        set_alias(tracking_uri, model_name, CHALLENGER, None)
    return history.record(
        "prod",
        model_name,
        version,
        "promoted",
        serving=version,
        actor=actor,
        reason=why,
        details={"previous": previous, **dict(details or {})},
    )


def roll_back_champion(
    history: DeploymentHistory,
    tracking_uri: str,
    model_name: str,
    to_version: str | int,
    *,
    actor: str,
    reason: str,
) -> Event:
    """After a promotion went wrong: the champion alias back to ``to_version``, recorded with who and why."""
    from creditops.governance.registry import alias_version

    bad = alias_version(tracking_uri, model_name, CHAMPION)
    set_alias(tracking_uri, model_name, CHAMPION, to_version)
    return history.record(
        "prod",
        model_name,
        to_version,
        "rolled_back",
        serving=to_version,
        actor=actor,
        reason=reason,
        details={"from": bad},
    )
