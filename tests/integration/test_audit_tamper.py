"""Tamper evidence against a database writer, on SQLite and on Postgres.

The attacker can write to the database (disables the append-only triggers) and re-hashes what they changed,
so the hash chain alone stays consistent (asserted: verification without the anchor passes). The anchor file,
written outside the database after every commit, exposes each of: an edited record, a deleted record, a
truncated tail and a deleted whole chain. ``creditops audit verify`` reports it and exits 1.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from creditops import cli
from creditops.governance.audit import (
    GENESIS,
    TABLE,
    AuditLog,
    AuditRecord,
    _record_payload,
    chain_hash,
)

PG_ADMIN = os.environ.get("CREDITOPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def rec(i: int) -> AuditRecord:
    return AuditRecord(
        prediction_id=f"p{i}",
        model_name="tiny",
        model_version="tiny@1",
        inputs={"income": 1000.0 + i},
        output={"pd": 0.1, "score": 650.0},
        explanation=[],
        decision="approve",
        caller_id="svc",
    )


class Attacker:
    """Direct database access with the append-only triggers out of the way."""

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite:///"):
            self.conn = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
            self.ph = "?"
            for trig in ("no_update", "no_delete"):
                self.conn.execute(f"DROP TRIGGER {TABLE}_{trig}")
        else:
            self.conn = psycopg.connect(url, autocommit=True)
            self.ph = "%s"
            self.conn.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")

    def run(self, sql: str, params: tuple = ()) -> list[tuple]:
        cur = self.conn.execute(sql.replace("%s", self.ph), params)
        return list(cur.fetchall()) if cur.description else []

    def rehash(self, chain: str) -> None:
        """Renumber ``chain`` from 0 and recompute every hash, as a careful attacker would."""
        cols = "id, chain_id, seq, prediction_id, ts, model_name, model_version, inputs, output, "
        cols += "explanation, decision, caller_id"
        rows = self.run(f"SELECT {cols} FROM {TABLE} WHERE chain_id = %s ORDER BY seq", (chain,))
        head = GENESIS
        for seq, row in enumerate(rows):
            digest = chain_hash(head, _record_payload(chain, seq, (row[1], seq, *row[3:])))
            self.run(
                f"UPDATE {TABLE} SET seq = %s, prev_hash = %s, hash = %s WHERE id = %s",
                (-1 - seq, head, digest, row[0]),
            )  # negative first: (chain_id, seq) is unique
            head = digest
        self.run(f"UPDATE {TABLE} SET seq = -1 - seq WHERE chain_id = %s AND seq < 0", (chain,))

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path, run_id: str) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/audit.db"
        return
    name = f"creditops_test_{run_id}_tamper_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**8}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def written(log_url: str, tmp_path: Path) -> tuple[str, Path]:
    """Two anchored chains: ``a`` (10 records, two commits) and ``b`` (5 records)."""
    anchor = tmp_path / "audit.anchor"
    with AuditLog.open(log_url, chain_id="a", anchor_path=anchor) as a:
        a.append([rec(i) for i in range(6)])
        a.append([rec(i) for i in range(6, 10)])
    with AuditLog.open(log_url, chain_id="b", anchor_path=anchor) as b:
        b.append([rec(i) for i in range(5)])
    report = AuditLog.open(log_url, create=False).verify(anchor_path=anchor)
    assert report.ok and report.n_records == 15 and report.n_anchored == 2, report.summary()
    return log_url, anchor


def verdicts(url: str, anchor: Path) -> tuple[bool, bool, str]:
    """(ok without anchor, ok with anchor, problems with anchor)."""
    log = AuditLog.open(url, create=False)
    bare, anchored = log.verify(), log.verify(anchor_path=anchor)
    log.close()
    return bare.ok, anchored.ok, " | ".join(anchored.problems)


def test_edited_record(written: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    url, anchor = written
    attacker = Attacker(url)
    attacker.run(f"UPDATE {TABLE} SET decision = 'decline' WHERE chain_id = 'a' AND seq = 3")
    assert verdicts(url, anchor)[:2] == (False, False)  # not re-hashed: the chain itself breaks
    attacker.rehash("a")
    attacker.close()
    bare, anchored, problems = verdicts(url, anchor)
    assert bare and not anchored
    assert "chain a seq 9: differs from the anchored head" in problems
    assert cli.main(["audit", "verify", "--url", url, "--anchor", str(anchor)]) == 1
    out = capsys.readouterr().out
    assert "BROKEN" in out and "chain a" in out and "\x1b[" not in out


def test_deleted_record(written: tuple[str, Path]) -> None:
    url, anchor = written
    attacker = Attacker(url)
    attacker.run(f"DELETE FROM {TABLE} WHERE chain_id = 'a' AND seq = 4")
    attacker.rehash("a")
    attacker.close()
    bare, anchored, problems = verdicts(url, anchor)
    assert bare and not anchored
    assert "chain a: ends at seq 8, anchored up to seq 9" in problems


def test_truncated_tail(written: tuple[str, Path]) -> None:
    url, anchor = written
    attacker = Attacker(url)
    attacker.run(f"DELETE FROM {TABLE} WHERE chain_id = 'a' AND seq >= 7")
    attacker.close()
    bare, anchored, problems = verdicts(url, anchor)
    assert bare and not anchored
    assert "(tail truncated)" in problems


def test_deleted_whole_chain(written: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    url, anchor = written
    attacker = Attacker(url)
    attacker.run(f"DELETE FROM {TABLE} WHERE chain_id = 'b'")
    attacker.close()
    bare, anchored, problems = verdicts(url, anchor)
    assert bare and not anchored
    assert "chain b: missing" in problems
    assert cli.main(["audit", "verify", "--url", url, "--anchor", str(anchor)]) == 1
    assert "chain b: missing" in capsys.readouterr().out


def test_untampered_log_verifies_from_the_cli(written: tuple[str, Path], capsys) -> None:
    url, anchor = written
    assert cli.main(["audit", "verify", "--url", url, "--anchor", str(anchor)]) == 0
    out = capsys.readouterr().out
    assert "VERIFIED: 15 records in 2 chains" in out and "2 checkpointed chains" in out
