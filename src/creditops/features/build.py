"""Build the four feature tables (and the training entity frame) from a raw :class:`CreditWorld`.

:func:`build_snapshot_features` is the feature step for any snapshot: a synthetic world goes through the
functions below, a dataset-spec table through :mod:`creditops.features.spec`.

Tables carry ``applicant_id`` + ``event_timestamp`` (UTC) + the group's features in registry order:

* identity: one row per application, stamped ``application_ts``;
* bureau: one row per monthly snapshot, stamped ``snapshot_ts``;
* behavioural, derived: one row per applicant as of ``application_ts`` and one as of ``world.as_of``,
  computed only from events at or before that time.

Everything is vectorised (hash lookups, ``np.bincount``, ``merge_asof``); there is no per-applicant loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from creditops.features.behavioural import TransactionWindow
from creditops.features.contract import FeatureContract, builtin_contract
from creditops.features.registry import (
    GROUPS,
    JOIN_KEY,
    TIMESTAMP,
    FeatureDef,
    Group,
    features_in,
    get_feature,
)

if TYPE_CHECKING:
    from creditops.data.synthetic import CreditWorld

ENTITY_COLUMNS = (JOIN_KEY, TIMESTAMP, "defaulted", "sex", "age_band", "race")


def feature_function(name: str) -> Callable[[Any], pd.Series]:
    """The function computing feature ``name`` (``creditops.features.<group>.<name>``)."""
    feature: FeatureDef = get_feature(name)
    return getattr(import_module(f"creditops.features.{feature.group}"), feature.name)


def compute_columns(group: Group, source: Any) -> dict[str, np.ndarray]:
    """Every feature function of ``group`` applied to ``source``: name -> values (registry order, dtypes).

    :func:`compute_group` as arrays, for a caller that puts them into a frame of its own with other columns
    (one frame construction instead of several and a concat: the stream's batches are small).
    """
    columns = {}
    for feature in features_in(group):
        values = feature_function(feature.name)(source)
        columns[feature.name] = values.to_numpy().astype("int64" if feature.dtype == "int" else "float64")
    return columns


def compute_group(group: Group, source: Any) -> pd.DataFrame:
    """Apply every feature function of ``group`` to ``source``: registry column order, declared dtypes."""
    return pd.DataFrame(compute_columns(group, source))


def _utc(ts: pd.Series) -> pd.Series:
    # to_datetime scans a datetime column value by value (its cache check): only strings need it
    ts = ts.dt.tz_convert("UTC") if isinstance(ts.dtype, pd.DatetimeTZDtype) else pd.to_datetime(ts, utc=True)
    return ts.astype("datetime64[ns, UTC]").reset_index(drop=True)


def _utc_ts(ts: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _keyed(ids: pd.Series, ts: pd.Series, features: pd.DataFrame) -> pd.DataFrame:
    head = pd.DataFrame({JOIN_KEY: ids.to_numpy("int64"), TIMESTAMP: _utc(ts)})
    return pd.concat([head, features.reset_index(drop=True)], axis=1)


def as_of_points(applications: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """(applicant_id, as_of) pairs: each application time, plus ``as_of`` when it is later."""
    at_application = pd.DataFrame(
        {JOIN_KEY: applications[JOIN_KEY].to_numpy("int64"), "as_of": _utc(applications["application_ts"])}
    )
    now = at_application.loc[at_application["as_of"] < _utc_ts(as_of), [JOIN_KEY]].assign(
        as_of=_utc_ts(as_of)
    )
    return pd.concat([at_application, now], ignore_index=True)


def identity_table(applications: pd.DataFrame) -> pd.DataFrame:
    """Identity features stamped with the application time."""
    return _keyed(
        applications[JOIN_KEY], applications["application_ts"], compute_group("identity", applications)
    )


def bureau_table(bureau: pd.DataFrame) -> pd.DataFrame:
    """Bureau features, one row per snapshot."""
    bureau = bureau.sort_values([JOIN_KEY, "snapshot_ts"], kind="stable").reset_index(drop=True)
    return _keyed(bureau[JOIN_KEY], bureau["snapshot_ts"], compute_group("bureau", bureau))


def behavioural_table(transactions: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """Behavioural features for each (applicant, as_of) point."""
    window = TransactionWindow.build(transactions, points)
    return _keyed(points[JOIN_KEY], points["as_of"], compute_group("behavioural", window))


def derived_table(identity: pd.DataFrame, bureau: pd.DataFrame, behavioural: pd.DataFrame) -> pd.DataFrame:
    """Derived features at the behavioural points, using the latest bureau snapshot at or before each."""
    frame = behavioural.merge(identity.drop(columns=[TIMESTAMP]), on=JOIN_KEY, how="left")
    frame = frame.sort_values(TIMESTAMP, kind="stable")
    snapshots = bureau.rename(columns={TIMESTAMP: "_snapshot_ts"}).sort_values("_snapshot_ts", kind="stable")
    frame = pd.merge_asof(
        frame, snapshots, left_on=TIMESTAMP, right_on="_snapshot_ts", by=JOIN_KEY, direction="backward"
    )
    frame = frame.sort_values([JOIN_KEY, TIMESTAMP], kind="stable").reset_index(drop=True)
    derived = compute_group("derived", frame).fillna(0.0)
    return _keyed(frame[JOIN_KEY], frame[TIMESTAMP], derived)


def build_feature_tables(world: CreditWorld) -> dict[str, pd.DataFrame]:
    """All four feature tables, keyed by group (identity, bureau, behavioural, derived)."""
    points = as_of_points(world.applications, world.as_of)
    tables = {
        "identity": identity_table(world.applications),
        "bureau": bureau_table(world.bureau),
        "behavioural": behavioural_table(world.transactions, points),
    }
    tables["derived"] = derived_table(tables["identity"], tables["bureau"], tables["behavioural"])
    return {group: tables[group] for group in GROUPS}


def entity_frame(applications: pd.DataFrame) -> pd.DataFrame:
    """Training entities: applicant, application time, label, protected attributes (never model inputs)."""
    frame = applications.rename(columns={"application_ts": TIMESTAMP})[list(ENTITY_COLUMNS)].copy()
    frame[TIMESTAMP] = _utc(frame[TIMESTAMP])
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class SnapshotFeatures:
    """Everything the feature step produces for one snapshot, whatever its kind.

    Attributes:
        tables: Feature tables keyed by table name (each read by the Feast view ``<name>_fv``).
        entities: Training entity frame (``contract.entity_columns``).
        contract: What the model consumes and which FeatureService serves it.
        as_of: Latest event time in the tables (materialisation end).
    """

    tables: dict[str, pd.DataFrame]
    entities: pd.DataFrame
    contract: FeatureContract
    as_of: pd.Timestamp


def build_snapshot_features(tables: dict[str, pd.DataFrame], source: dict[str, Any]) -> SnapshotFeatures:
    """Feature tables, entities and contract of a (validated) snapshot, chosen by its source kind.

    Args:
        tables: The snapshot's tables.
        source: The snapshot's source description (``SnapshotInfo.source``): ``kind`` ``synthetic`` (a
            world with ``as_of``) or a dataset-spec kind carrying the ``spec``.
    """
    if source.get("kind") == "synthetic":
        from creditops.data.synthetic import CreditWorld

        world = CreditWorld.from_tables(tables, source["as_of"])
        return SnapshotFeatures(
            build_feature_tables(world), entity_frame(world.applications), builtin_contract(), world.as_of
        )
    from creditops.data.spec import DatasetSpec
    from creditops.features.spec import UNDATED_AS_OF, spec_contract, spec_entity_frame, spec_feature_table

    spec = DatasetSpec.model_validate(source["spec"])
    df = tables[spec.name]
    contract = spec_contract(df, spec)
    table = spec_feature_table(df, spec, contract)
    as_of = _utc_ts(table[TIMESTAMP].max()) if len(table) else UNDATED_AS_OF
    return SnapshotFeatures({spec.name: table}, spec_entity_frame(df, spec), contract, as_of)
