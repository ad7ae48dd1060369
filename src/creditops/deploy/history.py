"""Deployment history: an append-only table of what was deployed where, when, by whom and why.

MLflow keeps only the current aliases; this table answers "which version served production on date X, and
who approved it". Every event is one row (``staged``, ``smoke_passed`` / ``smoke_failed``, ``canary_started``,
``step``, ``rolled_back``, ``approved``, ``promoted``, ...); rows that change what an environment serves carry
``serving`` (the version serving it from then on). UPDATE and DELETE are rejected by triggers (and TRUNCATE on
Postgres), like the audit log. SQLite by default, Postgres in production (same URL forms as the audit log).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from creditops.errors import CreditOpsError
from creditops.governance.audit import append_only_postgres, append_only_sqlite

TABLE = "deployment_history"
COLUMNS = ("ts", "environment", "model_name", "version", "event", "serving", "actor", "reason", "details")
#: ``training`` holds the retraining trigger's decisions and the retraining runs it started.
ENVIRONMENTS = ("dev", "staging", "prod", "training")

_SQLITE_DDL = (
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, environment TEXT NOT NULL,
        model_name TEXT NOT NULL, version TEXT NOT NULL, event TEXT NOT NULL, serving TEXT NOT NULL,
        actor TEXT NOT NULL, reason TEXT NOT NULL, details TEXT NOT NULL)""",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_env_ts ON {TABLE} (environment, ts)",
    *append_only_sqlite(TABLE),
)
_PG_DDL = (
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        id BIGSERIAL PRIMARY KEY, ts TEXT NOT NULL, environment TEXT NOT NULL,
        model_name TEXT NOT NULL, version TEXT NOT NULL, event TEXT NOT NULL, serving TEXT NOT NULL,
        actor TEXT NOT NULL, reason TEXT NOT NULL, details TEXT NOT NULL)""",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_env_ts ON {TABLE} (environment, ts)",
    *append_only_postgres(TABLE),
)


def utc_now() -> str:
    """Now, UTC, fixed-width ISO-8601 with microseconds (sorts as text)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def as_utc_text(when: str | datetime) -> str:
    """A datetime or ISO date/time as the table's UTC text (a bare date means the end of that day)."""
    if isinstance(when, str):
        text = when.strip()
        if len(text) == 10:  # YYYY-MM-DD: "on date X" means by the end of that day
            return f"{text}T23:59:59.999999Z"
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Event:
    """One row of the history."""

    id: int
    ts: str
    environment: str
    model_name: str
    version: str
    event: str
    serving: str
    actor: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ServedAnswer:
    """Which version served an environment at a time, since when, and the approval behind it."""

    version: str
    since: str
    event: Event
    approval: Event | None


class DeploymentHistory:
    """Append-only deployment history on SQLite (``sqlite:///path``) or Postgres (``postgresql://...``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        if url.startswith("sqlite:///"):
            path = url[len("sqlite:///") :]
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._conn: Any = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            for stmt in _SQLITE_DDL:
                self._conn.execute(stmt)
            self._pg = False
        elif url.startswith(("postgresql://", "postgres://")):
            import psycopg

            self._conn = psycopg.connect(url, autocommit=True)
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (TABLE,))
                for stmt in _PG_DDL:
                    self._conn.execute(stmt)
            self._pg = True
        else:
            raise CreditOpsError(f"deploy.history_url must be sqlite:///... or postgresql://..., got {url!r}")

    def record(
        self,
        environment: str,
        model_name: str,
        version: str | int,
        event: str,
        *,
        serving: str | int | None = None,
        actor: str = "",
        reason: str = "",
        details: Mapping[str, Any] | None = None,
        ts: str | datetime | None = None,
    ) -> Event:
        """Append one event and return it."""
        if environment not in ENVIRONMENTS:
            raise CreditOpsError(f"environment must be one of {ENVIRONMENTS}, got {environment!r}")
        row = (
            as_utc_text(ts) if ts is not None else utc_now(),
            environment,
            model_name,
            str(version),
            event,
            "" if serving is None else str(serving),
            actor,
            reason,
            json.dumps(dict(details or {}), sort_keys=True, default=str),
        )
        ph = ", ".join(["%s" if self._pg else "?"] * len(COLUMNS))
        sql = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({ph}) RETURNING id"  # nosec B608  # constants
        with self._lock:
            new_id = self._conn.execute(sql, row).fetchone()[0]
        return _event((new_id, *row))

    def events(self, environment: str | None = None, model_name: str | None = None) -> list[Event]:
        """Events in the order they were recorded, optionally of one environment / model."""
        where, params = [], []
        for col, value in (("environment", environment), ("model_name", model_name)):
            if value is not None:
                where.append(f"{col} = {'%s' if self._pg else '?'}")
                params.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT id, {', '.join(COLUMNS)} FROM {TABLE}{clause} ORDER BY id",  # nosec B608  # values bound
                params,
            )
            return [_event(r) for r in rows.fetchall()]

    def approval(self, model_name: str, version: str | int, before: str | None = None) -> Event | None:
        """The latest ``approved`` event of a version (recorded at or before ``before``, if given)."""
        found = [
            e
            for e in self.events("prod", model_name)
            if e.event == "approved" and e.version == str(version) and (before is None or e.ts <= before)
        ]
        return found[-1] if found else None

    def served_at(self, environment: str, model_name: str, when: str | datetime) -> ServedAnswer | None:
        """Which version served ``environment`` at ``when`` (a date: the end of that day), who approved it."""
        at = as_utc_text(when)
        changes = [e for e in self.events(environment, model_name) if e.serving and e.ts <= at]
        if not changes:
            return None
        last = changes[-1]
        since = last
        for e in reversed(changes):
            if e.serving != last.serving:
                break
            since = e
        return ServedAnswer(last.serving, since.ts, last, self.approval(model_name, last.serving, before=at))

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def _event(row: Any) -> Event:
    return Event(*row[:9], details=json.loads(row[9]) if row[9] else {})
