"""Stream events and their validation: the batch rules (:mod:`creditops.data.validation`) on event batches.

An event is one JSON object. ``kind`` says which raw table its row belongs to; the other fields are that
table's columns (:data:`creditops.data.schema.WORLD_SCHEMAS`)::

    {"kind": "transaction", "transaction_id": 17, "applicant_id": 3, "transaction_ts": "2026-11-30T10:00:00Z",
     "amount": 42.5, "type": "card_purchase", "is_late": false}
    {"kind": "application", "applicant_id": 3, "application_ts": "...", "income": ..., ...}

A batch whose events all pass is checked by :func:`creditops.data.validation.clean_records` (the same rules on
the parsed records, no frame); any other goes through ``validate_table``, which gives the reasons.

Every event that fails is returned as a :class:`Rejected` with every rule it broke (the same rule names and
details as the quarantine table), never dropped: ``len(events) == len(accepted rows) + len(rejected)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import orjson
import pandas as pd

from creditops.data.schema import WORLD_SCHEMAS
from creditops.data.validation import clean_records, validate_table

KINDS: dict[str, str] = {"transaction": "transactions", "application": "applications"}
"""Event kind -> raw table whose schema validates it."""

# Column, range, category, null and time rules as in batch. A repeated key is judged by the state instead of
# inside one batch: the same event twice is a redelivery (harmless), the same id with other content is a
# ``duplicate_key`` conflict (:class:`creditops.streaming.state.AddResult`).
_STREAM_SCHEMAS = {name: replace(schema, key=()) for name, schema in WORLD_SCHEMAS.items()}
_FIELDS = {table: frozenset(c.name for c in WORLD_SCHEMAS[table].columns) for table in KINDS.values()}


@dataclass(frozen=True)
class Rejected:
    """An event that cannot be applied, with why (one line) and its raw bytes."""

    raw: bytes
    rule: str
    detail: str

    @property
    def reason(self) -> str:
        """``rule: detail``, as stored beside the event in the dead-letter stream."""
        return f"{self.rule}: {self.detail}"


@dataclass
class ValidatedBatch:
    """One batch split into accepted rows per table (in arrival order) and rejected events.

    Attributes:
        tables: raw table name -> accepted rows (validated dtypes); ``event_index`` is the event's position in
            the batch.
        rejected: (position in the batch, rejection) for every event that failed.
    """

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    rejected: list[tuple[int, Rejected]] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        """Number of accepted events."""
        return sum(len(t) for t in self.tables.values())


def _parse(raw: bytes) -> dict | Rejected:
    try:
        event = orjson.loads(raw)  # a fifth of json.loads' time per event
    except orjson.JSONDecodeError:
        # what orjson refuses and Python's json reads (NaN, Infinity, integers beyond 64 bits, UTF-16):
        # parsed, so the field rules reject it naming the field, as batch validation would
        try:
            event = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return Rejected(raw, "schema", f"not a JSON object ({exc.__class__.__name__}: {exc})")
    if not isinstance(event, dict):
        return Rejected(raw, "schema", f"not a JSON object (got {type(event).__name__})")
    kind = event.get("kind")
    if kind not in KINDS:
        return Rejected(raw, "schema", f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    return event


def validate_events(
    raws: Sequence[bytes],
    now: pd.Timestamp | None = None,
    known_applicants: Callable[[np.ndarray], np.ndarray] | None = None,
) -> ValidatedBatch:
    """Validate a batch of raw events with the batch rules of their tables.

    Args:
        raws: the events' bytes, in arrival order.
        now: timestamps after this break ``future_timestamp`` (None skips the rule).
        known_applicants: ids -> bool mask of applicants that exist (the ``orphan`` rule for
            transactions); applications in the same batch count as known. None skips the rule.

    Returns:
        The accepted rows per table and the rejected events.
    """
    out = ValidatedBatch()
    rows: dict[str, list[dict]] = {t: [] for t in KINDS.values()}
    positions: dict[str, list[int]] = {t: [] for t in KINDS.values()}
    for i, raw in enumerate(raws):
        event = _parse(raw)
        if isinstance(event, Rejected):
            out.rejected.append((i, event))
            continue
        table = KINDS[event.pop("kind")]
        if not _FIELDS[table].issuperset(event):
            extra = sorted(set(event) - _FIELDS[table])
            out.rejected.append((i, Rejected(raw, "schema", f"unknown field(s) {extra}")))
            continue
        rows[table].append(event)
        positions[table].append(i)
    for table in ("applications", "transactions"):
        if not rows[table]:
            continue
        pos = np.asarray(positions[table])
        # the usual case: all pass
        accepted = clean_records(rows[table], _STREAM_SCHEMAS[table], now=now, extra={"event_index": pos})
        if accepted is None:
            frame = pd.DataFrame(rows[table], columns=[c.name for c in WORLD_SCHEMAS[table].columns])
            result = validate_table(frame, _STREAM_SCHEMAS[table], now=now)
            bad = result.quarantine
            good = np.ones(len(frame), dtype=bool)
            if len(bad):
                good[bad["row_number"].to_numpy(np.int64)] = False
                for r in bad.itertuples(index=False):
                    at = int(pos[r.row_number])
                    out.rejected.append((at, Rejected(raws[at], r.rule, r.detail)))
            accepted = result.accepted[table].copy()
            accepted["event_index"] = pos[good]
        if table == "transactions" and known_applicants is not None and len(accepted):
            ids = accepted["applicant_id"].to_numpy(np.int64)
            known = np.asarray(known_applicants(ids), dtype=bool)
            if "applications" in out.tables:
                known |= np.isin(ids, out.tables["applications"]["applicant_id"].to_numpy(np.int64))
            if not known.all():
                for r in accepted.loc[~known].itertuples(index=False):
                    detail = f"applicant_id {r.applicant_id} not in accepted applications"
                    out.rejected.append((int(r.event_index), Rejected(raws[r.event_index], "orphan", detail)))
                accepted = accepted.loc[known].reset_index(drop=True)
        out.tables[table] = accepted
    out.rejected.sort(key=lambda item: item[0])
    return out


def _iso(ts: pd.Series) -> list[str]:
    """ISO 8601 with nanoseconds: an event carries exactly the timestamp the batch table holds."""
    return [t.isoformat() for t in pd.to_datetime(ts, utc=True)]


def encode_transactions(transactions: pd.DataFrame) -> list[bytes]:
    """One JSON event per transaction row (``transaction_id, applicant_id, transaction_ts, amount, ...``)."""
    ts = _iso(transactions["transaction_ts"])
    return [
        json.dumps(
            {
                "kind": "transaction",
                "transaction_id": int(r.transaction_id),
                "applicant_id": int(r.applicant_id),
                "transaction_ts": t,
                "amount": float(r.amount),
                "type": str(r.type),
                "is_late": bool(r.is_late),
            }
        ).encode()
        for r, t in zip(transactions.itertuples(index=False), ts, strict=True)
    ]


def encode_applications(applications: pd.DataFrame) -> list[bytes]:
    """One JSON event per application row (the columns of the applications schema)."""
    columns = [c.name for c in WORLD_SCHEMAS["applications"].columns]
    frame = applications[columns].copy()
    frame["application_ts"] = _iso(frame["application_ts"])
    out = []
    for record in frame.to_dict(orient="records"):
        record = {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
        out.append(json.dumps({"kind": "application", **record}).encode())
    return out
