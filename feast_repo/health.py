"""Read what feature health needs from the stores and the audit log; the checks are the core's.

Online values and their event times come through ``get_online_features(...).to_dict(include_event_timestamps=
True)`` (any online backend); the offline side is the feature tables' latest row per entity and, for skew,
``training_frame`` (``get_historical_features``) at each audited decision's time.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from feast import FeatureStore

from creditops.features.contract import FeatureContract, builtin_contract
from creditops.features.health import (
    FeatureHealth,
    freshness,
    null_rates,
    offline_online_psi,
    out_of_range_rates,
    skew,
)
from feast_repo import definitions


def offline_latest(store: FeatureStore, contract: FeatureContract) -> pd.DataFrame:
    """The latest offline row per entity of every table of ``contract``, joined on the join key."""
    frames = []
    for table in contract.tables:
        if store.config.offline_store.type == "postgres":
            from feast_repo.store import _pg_connect

            with _pg_connect(store) as conn, conn.cursor() as cur:
                cur.execute(f'SELECT * FROM "{definitions.table_name(table)}"')  # nosec B608  # name from definitions
                cols = [c.name for c in cur.description]
                df = pd.DataFrame(cur.fetchall(), columns=cols)
        else:
            df = pd.read_parquet(
                definitions.parquet_path(store.creditops_env["CREDITOPS_FEAST_DATA_DIR"], table)
            )
        latest = df.sort_values(contract.timestamp).groupby(contract.join_key).tail(1)
        frames.append(latest.drop(columns=[contract.timestamp]).set_index(contract.join_key))
    return pd.concat(frames, axis=1).reset_index()


def online_sample(
    store: FeatureStore, ids: list, contract: FeatureContract
) -> tuple[pd.DataFrame, dict[str, datetime | None]]:
    """Online values of ``ids`` (contract order) and, per view, the newest event time among them."""
    service = store.get_feature_service(contract.service)
    rows = [{contract.join_key: i} for i in ids]
    raw = store.get_online_features(features=service, entity_rows=rows).to_dict(include_event_timestamps=True)
    values = pd.DataFrame({f: np.array(raw[f], dtype=float) for f in contract.features})
    newest: dict[str, datetime | None] = {}
    for projection in service.feature_view_projections:
        stamps = [t for t in raw.get(f"{projection.features[0].name}__ts", []) if t is not None]
        newest[projection.name] = max((_aware(t) for t in stamps), default=None)
    return values, newest


def _aware(ts: datetime | int | float) -> datetime:
    if isinstance(ts, int | float):  # Feast gives event timestamps as epoch seconds
        return datetime.fromtimestamp(ts, UTC)
    ts = pd.Timestamp(ts).to_pydatetime()
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def served_vs_offline(store: FeatureStore, served: pd.DataFrame, contract: FeatureContract) -> pd.DataFrame:
    """Offline point-in-time values for the audited (applicant, decision time) pairs, in ``served`` order."""
    from feast_repo.store import training_frame

    entity = pd.DataFrame(
        {contract.join_key: served[contract.join_key].astype("int64"), contract.timestamp: served["ts"]}
    )
    return training_frame(store, entity, contract)


def check_health(
    store: FeatureStore,
    contract: FeatureContract | None = None,
    sample: int = 500,
    audit_url: str | None = None,
    audit_limit: int = 50,
    now: datetime | None = None,
    seed: int = 0,
) -> FeatureHealth:
    """Freshness, null / out-of-range rates, offline vs online PSI on a sample; skew on audited decisions."""
    contract = contract or builtin_contract()
    now = now or datetime.now(UTC)
    offline = offline_latest(store, contract)
    rng = np.random.default_rng(seed)
    pick = offline.iloc[np.sort(rng.choice(len(offline), size=min(sample, len(offline)), replace=False))]
    ids = [int(i) for i in pick[contract.join_key]]
    online, newest = online_sample(store, ids, contract)
    checked, mismatches, examples = 0, {}, []
    if audit_url:
        from creditops.governance.audit import AuditLog

        with AuditLog.open(audit_url) as log:
            served = log.read_inputs(limit=audit_limit)
        if contract.join_key in served.columns:
            served = served[served[contract.join_key].notna()].reset_index(drop=True)
            if len(served) and set(contract.features) <= set(served.columns):
                offline_pit = served_vs_offline(store, served, contract)
                mismatches, examples = skew(served, offline_pit, contract.features)
                for e in examples:
                    e["applicant_id"] = int(served[contract.join_key].iloc[e["row"]])
                    e["ts"] = served["ts"].iloc[e["row"]].isoformat()
                checked = len(served)
    return FeatureHealth(
        freshness_seconds=freshness(newest, now),
        null_rate=null_rates(online, contract.features),
        out_of_range_rate=out_of_range_rates(online, contract.valid_ranges),
        offline_online_psi=offline_online_psi(pick.reset_index(drop=True), online, contract.features),
        skew_checked=checked,
        skew_mismatches=mismatches,
        skew_examples=examples,
    )
