"""Monitoring wired to the platform: references from the registry, audit log, outcome store, applications.

The CLI (``creditops monitor ...``) and the monitor process call these; the judges themselves live in the
pure modules beside this one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from creditops.config import Settings
from creditops.data.outcomes import join_outcomes, load_outcome_store
from creditops.errors import DataError
from creditops.monitoring.reference import (
    MonitoringReferenceError,
    ReferenceSet,
    load_reference,
)
from creditops.monitoring.run import MonitoringRun, run_monitoring
from creditops.monitoring.source import AuditDecisions, read_audit_decisions, served_versions

_REGISTERED = re.compile(r"^(?P<name>[^@/]+)@(?P<version>\d+)$")
DEFAULT_PROTECTED = ("sex", "age_band", "race")


def load_references(
    tracking_uri: str | None, refs: Sequence[str], served: Sequence[str] = ()
) -> ReferenceSet:
    """References for the given model references, plus every registered version seen in the audit log.

    Args:
        tracking_uri: MLflow registry (for ``models:/...`` references and registered served versions).
        refs: Reference JSON files, bundle directories or model references (``models:/name/3``,
            ``name@champion``); a registered one also answers to ``name@<number>``, the label the predictor
            audits.
        served: Version labels found in the audit log; ``name@<number>`` ones are fetched from the registry
            when not already given.

    Raises:
        MonitoringReferenceError: a reference cannot be found or read.
    """
    from creditops.errors import BundleError
    from creditops.governance.registry import resolve, resolve_version

    out = ReferenceSet()
    for ref in refs:
        path = Path(ref)
        if path.is_file():
            out.add(load_reference(path))
            continue
        try:
            bundle_dir = resolve(tracking_uri, ref)
        except BundleError as exc:
            raise MonitoringReferenceError(f"reference {ref!r}: {exc}") from None
        reference = load_reference(bundle_dir)
        number = None if path.is_dir() else resolve_version(tracking_uri or "", ref)
        out.add(reference, f"{reference.model_name}@{number}" if number else None)
    for label in served:
        if label in out.labels():
            continue
        match = _REGISTERED.match(label)
        if match and tracking_uri:
            try:
                bundle_dir = resolve(tracking_uri, f"models:/{match['name']}/{match['version']}")
            except BundleError:
                continue  # run_monitoring names the version that has no reference
            out.add(load_reference(bundle_dir), label)
    return out


def protected_attributes(
    decisions: AuditDecisions, applications: str | Path | None, columns: Sequence[str] = DEFAULT_PROTECTED
) -> pd.DataFrame | None:
    """Protected attributes per decision, joined from the application records by applicant id.

    Raises:
        DataError: the file lacks ``applicant_id`` or every protected column.
    """
    if applications is None:
        return None
    path = Path(applications)
    if not path.is_file():
        raise DataError(f"applications file {path} does not exist")
    apps = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
    cols = [c for c in columns if c in apps.columns]
    if "applicant_id" not in apps.columns or not cols:
        raise DataError(f"{path}: needs applicant_id and at least one of {list(columns)}")
    apps = apps.drop_duplicates("applicant_id", keep="last")
    apps["applicant_id"] = apps["applicant_id"].astype(str)
    left = pd.DataFrame({"applicant_id": pd.Series(decisions.applicant_id, dtype=str)})
    return left.merge(apps[["applicant_id", *cols]], on="applicant_id", how="left")[cols]


def monitor_once(
    settings: Settings,
    refs: Sequence[str] = (),
    *,
    audit_url: str | None = None,
    start: Any = None,
    end: Any = None,
    applications: str | Path | None = None,
    as_of: Any = None,
) -> MonitoringRun:
    """Read the audit log, join outcomes and protected attributes, run every judge."""
    url = audit_url or settings.audit.url
    served = served_versions(url, start=start, end=end)
    references = load_references(settings.mlflow.tracking_uri, refs, served)
    features = sorted({f for v in served for f in references.get(v).feature_names()})
    decisions = read_audit_decisions(url, features, start=start, end=end)
    outcomes = load_outcome_store(settings.workdir / "outcomes")
    joined = None
    if len(outcomes):
        joined = join_outcomes(decisions.prediction_id, decisions.applicant_id, decisions.ts, outcomes, as_of)
    return run_monitoring(
        decisions,
        references,
        settings.monitoring,
        outcomes=joined,
        protected=protected_attributes(decisions, applications),
        as_of=as_of,
    )
