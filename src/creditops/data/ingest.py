"""Ingest a data source into an immutable snapshot (what the CLI ``ingest`` and the KFP component call).

Sources: ``synthetic`` (generated world), ``german_credit`` and ``hmda`` (shipped real data), ``spec`` (your
own CSV/Parquet described by a dataset spec). Also :func:`corrupt_world`, which injects known defects into a
world so tests and demos can show that every bad row is quarantined with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from creditops.data import real
from creditops.data.snapshot import SnapshotInfo, write_snapshot
from creditops.data.spec import DatasetSpec, check_dataset, load_dataset
from creditops.data.synthetic import GENERATOR_VERSION, PROTECTED_LINEAGE, CreditWorld, generate_world
from creditops.data.validation import ValidationResult, validate_table, validate_world
from creditops.errors import DataError

Source = Literal["synthetic", "german_credit", "hmda", "spec"]
SOURCES: tuple[str, ...] = ("synthetic", "german_credit", "hmda", "spec")
_log = logging.getLogger(__name__)


def load_source(
    source: str, spec_path: str | Path | None = None, warn: Callable[[str], None] | None = None
) -> tuple[pd.DataFrame, DatasetSpec]:
    """Read a real or spec source and check it against its spec (what ingest does before writing).

    Every mistake a new user can make in a spec stops here, as one line naming the field and the fix,
    before any pipeline step runs (:meth:`DatasetSpec.check`, :func:`check_dataset`).

    Args:
        source: ``german_credit`` | ``hmda`` | ``spec``.
        spec_path: Dataset spec YAML (required for ``spec``).
        warn: Receives each warning line (default: logged).

    Raises:
        ValueError: On an unknown source or a missing ``spec_path``.
        DataError: If the spec or its data cannot be trained on as declared.
    """
    if source in real.REAL_DATASETS:
        df, spec = real.load_real(source)
    elif source == "spec":
        if spec_path is None:
            raise ValueError("source 'spec' needs spec_path (a dataset spec YAML)")
        spec = DatasetSpec.from_yaml(spec_path)
        df = load_dataset(spec)
    else:
        raise ValueError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    for line in check_dataset(df, spec, label=str(spec_path or source)):
        (warn or _log.warning)(line)
    return df, spec


#: What the model card says about the synthetic world (a spec dataset says it in its spec).
SYNTHETIC_CARD: dict[str, object] = {
    "name": "synthetic credit world",
    "description": (
        "Seeded synthetic consumer-credit population (creditops.data.synthetic): loan applications, monthly "
        "credit-bureau snapshots and 12 months of bank transactions per applicant."
    ),
    "purpose": (
        "Estimate the probability that a consumer credit applicant defaults within 12 months, to support an "
        "approve / review / decline decision on an individual application, with adverse-action reason codes."
    ),
    "target": "defaulted",
    "positive_value": 1,
    "target_meaning": "1 = default within 12 months of the application",
}


def describe_source(source: str, spec_path: str | Path | None = None) -> dict[str, object]:
    """The dataset a run trains on, as the model card describes it (name, purpose, target, lineage).

    Args:
        source: ``synthetic`` | ``german_credit`` | ``hmda`` | ``spec``.
        spec_path: Dataset spec YAML (for ``spec``).
    """
    if source == "synthetic":
        lineage = {attr: [attr, *(c for c in cols if c != attr)] for attr, cols in PROTECTED_LINEAGE.items()}
        return {**SYNTHETIC_CARD, "protected_lineage": lineage, "justifications": {}}
    if source in real.REAL_DATASETS:
        return DatasetSpec.from_yaml(real.spec_path(source)).card()
    if spec_path is None:
        raise ValueError("source 'spec' needs spec_path (a dataset spec YAML)")
    return DatasetSpec.from_yaml(spec_path).card()


def check_builtin_lineage() -> None:
    """Refuse a built-in feature that reads a protected attribute or one of its source columns.

    Raises:
        DataError: Naming the feature and the protected attribute it stands for.
    """
    from creditops.features.registry import feature_sources

    for feature, columns in feature_sources().items():
        for attr, sources in PROTECTED_LINEAGE.items():
            shared = sorted(set(columns) & {attr, *sources})
            if shared:
                raise DataError(
                    f"built-in feature {feature!r} reads {shared[0]!r}, which protected attribute {attr!r} "
                    "is derived from; remove it from creditops.features.registry.FEATURES"
                )


def ingest(
    source: str,
    out_root: str | Path,
    n_applicants: int = 10_000,
    seed: int = 7,
    spec_path: str | Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> SnapshotInfo:
    """Read or generate ``source`` and write it as a snapshot under ``out_root``.

    Args:
        source: ``synthetic`` | ``german_credit`` | ``hmda`` | ``spec``.
        out_root: Folder holding snapshot directories.
        n_applicants: Size of a synthetic world (ignored otherwise).
        seed: Seed of a synthetic world (ignored otherwise).
        spec_path: Dataset spec YAML (required for ``spec``).
        warn: Receives each warning about the data (default: logged), e.g. ids that will be quarantined.

    Returns:
        The snapshot info (``version``, ``path``, ...). The synthetic source records ``as_of``, ``seed``,
        ``n_applicants`` and the generator version; spec sources record the whole spec.

    Raises:
        ValueError: On an unknown source or a missing ``spec_path``.
        DataError: If the data cannot be read, or cannot be trained on as its spec declares (see
            :func:`load_source`); nothing is written then.
    """
    if source == "synthetic":
        check_builtin_lineage()
        world = generate_world(n_applicants, seed=seed)
        meta = {
            "kind": "synthetic",
            "n_applicants": int(n_applicants),
            "seed": int(seed),
            "generator_version": GENERATOR_VERSION,
            "as_of": world.as_of.isoformat(),
        }
        return write_snapshot(world.tables(), out_root, meta)
    df, spec = load_source(source, spec_path, warn)
    meta = {"kind": source, "dataset": spec.name, "spec": spec.model_dump(mode="json")}
    return write_snapshot({spec.name: df}, out_root, meta)


def corrupt_world(world: CreditWorld, seed: int = 0) -> tuple[CreditWorld, pd.DataFrame]:
    """Inject known defects into a copy of ``world`` (needs at least 20 applicants).

    Defects: missing and unparseable incomes (``null``, ``type``), impossible ages and credit scores,
    negative amounts (``range``), unknown purposes and transaction types (``category``), a duplicated
    applicant (``duplicate_key``), an application dated after ``as_of`` (``future_timestamp``), a non-boolean
    ``is_late`` (``type``) and transactions of an applicant that does not exist (``orphan``).

    Args:
        world: A clean world (not modified).
        seed: Chooses which rows are corrupted.

    Returns:
        ``(corrupted_world, injected)`` where ``injected`` has one row per defect: ``table``, ``row_number``
        (position in the corrupted table) and the ``rule`` it must break. Rows of a quarantined applicant in
        the other tables are quarantined as ``orphan`` as well; those are not listed.
    """
    rng = np.random.default_rng(seed)
    apps = world.applications.copy()
    bureau = world.bureau.copy()
    tx = world.transactions.copy()
    injected: list[tuple[str, int, str]] = []

    a = rng.choice(len(apps), size=9, replace=False)
    apps["income"] = apps["income"].astype(object)
    apps.loc[a[0], "income"] = None
    apps.loc[a[1], "income"] = "n/a"
    apps.loc[a[2], "income"] = "12,000"
    apps.loc[a[3], "age"] = -3
    apps.loc[a[4], "age"] = 150
    apps["purpose"] = apps["purpose"].astype(object)
    apps.loc[a[5], "purpose"] = "crypto"
    apps.loc[a[6], "application_ts"] = world.as_of + pd.Timedelta(days=30)
    rules = ("null", "type", "type", "range", "range", "category", "future_timestamp")
    injected += [("applications", int(row), rule) for row, rule in zip(a[:7], rules, strict=True)]
    apps = pd.concat([apps, apps.iloc[[a[7]]]], ignore_index=True)
    injected += [
        ("applications", int(a[7]), "duplicate_key"),
        ("applications", len(apps) - 1, "duplicate_key"),
    ]

    b = rng.choice(len(bureau), size=2, replace=False)
    bureau.loc[b[0], "credit_score"] = 900
    bureau.loc[b[1], "revolving_balance"] = -50.0
    injected += [("bureau", int(b[0]), "range"), ("bureau", int(b[1]), "range")]

    t = rng.choice(len(tx), size=3, replace=False)
    tx.loc[t[0], "amount"] = -10.0
    tx["type"] = tx["type"].astype(object)
    tx.loc[t[1], "type"] = "gift"
    tx["is_late"] = tx["is_late"].astype(object)
    tx.loc[t[2], "is_late"] = "maybe"
    injected += [("transactions", int(t[0]), "range"), ("transactions", int(t[1]), "category")]
    injected.append(("transactions", int(t[2]), "type"))
    ghost = tx.iloc[:3].copy()
    ghost["applicant_id"] = int(apps["applicant_id"].max()) + 1_000
    ghost["transaction_id"] = tx["transaction_id"].max() + 1 + np.arange(3)
    tx = pd.concat([tx, ghost], ignore_index=True)
    injected += [("transactions", len(tx) - 3 + i, "orphan") for i in range(3)]

    corrupted = CreditWorld(applications=apps, bureau=bureau, transactions=tx, as_of=world.as_of)
    return corrupted, pd.DataFrame(injected, columns=["table", "row_number", "rule"])


def validate_snapshot(tables: dict[str, pd.DataFrame], info: SnapshotInfo) -> ValidationResult:
    """Validate a snapshot by what it holds: a synthetic world (three tables) or a spec-described table."""
    if info.source.get("kind") == "synthetic":
        return validate_world(CreditWorld.from_tables(tables, info.source["as_of"]))
    spec = DatasetSpec.model_validate(info.source["spec"])
    return validate_table(tables[spec.name], spec)
