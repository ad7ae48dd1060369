"""Audit log on SQLite: hash chain, tamper detection, atomicity, group commit, read_inputs."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from creditops.governance.audit import (
    AuditLog,
    AuditRecord,
    AuditWriter,
    _record_payload,
    canonical_json,
)


def rec(i: int, **over) -> AuditRecord:
    base = dict(
        prediction_id=f"p{i}",
        model_name="tiny",
        model_version="tiny@1",
        inputs={"income": 1000.0 + i, "age": 30.5, "é": "ü"},
        output={"pd": 0.1, "score": 650.0, "decision": "approve"},
        explanation=[{"feature": "income", "value": 1.0, "contribution": 0.2, "reason": "Income too low"}],
        decision="approve",
        caller_id="test",
        ts=f"2026-01-01T00:00:{i % 60:02d}.000000Z",
    )
    base.update(over)
    return AuditRecord(**base)


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/audit.db"


def test_append_verify_and_chains(url):
    a = AuditLog.open(url, chain_id="worker-a")
    b = AuditLog.open(url, chain_id="worker-b")
    assert a.append([rec(i) for i in range(5)]) == 5
    b.append([rec(i) for i in range(3)])
    a.append([rec(9)])
    report = a.verify()
    assert report.ok and report.n_records == 9 and report.n_chains == 2
    assert a.count() == 9
    # re-opening a named chain continues it
    a2 = AuditLog.open(url, chain_id="worker-a")
    a2.append([rec(10)])
    assert a2.verify().ok


def test_payload_is_canonical_json(url):
    log = AuditLog.open(url, chain_id="c")
    r = rec(1)
    log.append([r])
    row = sqlite3.connect(url[len("sqlite:///") :]).execute("SELECT * FROM audit_log").fetchone()
    payload = _record_payload("c", 0, row[1:12])
    expected = {
        "caller_id": r.caller_id, "chain_id": "c", "decision": r.decision, "explanation": r.explanation,
        "inputs": r.inputs, "model_name": r.model_name, "model_version": r.model_version, "output": r.output,
        "prediction_id": r.prediction_id, "seq": 0, "ts": r.ts,
    }  # fmt: skip
    assert payload == canonical_json(expected)
    assert json.loads(payload) == json.loads(canonical_json(expected))


def test_append_only_triggers(url):
    log = AuditLog.open(url)
    log.append([rec(1)])
    conn = sqlite3.connect(url[len("sqlite:///") :])
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_log SET decision = 'decline'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_log")


def _tamper(url: str, sql: str) -> None:
    conn = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
    conn.execute("DROP TRIGGER audit_log_no_update")  # an attacker with file access bypasses the triggers
    conn.execute("DROP TRIGGER audit_log_no_delete")
    conn.execute(sql)
    conn.close()


@pytest.mark.parametrize(
    ("sql", "reason", "bad_id"),
    [
        (
            "UPDATE audit_log SET inputs = replace(inputs, '1003.0', '9003.0') WHERE seq = 3",
            "hash mismatch",
            4,
        ),
        (
            "UPDATE audit_log SET output = replace(output, 'approve', 'decline') WHERE seq = 3",
            "hash mismatch",
            4,
        ),
        ("DELETE FROM audit_log WHERE seq = 3", "expected seq 3", 5),  # the record after the hole
    ],
)
def test_tampering_is_detected(url, sql, reason, bad_id):
    log = AuditLog.open(url, chain_id="c")
    log.append([rec(i) for i in range(6)])
    assert log.verify().ok
    _tamper(url, sql)
    report = AuditLog.open(url).verify()
    assert not report.ok
    assert reason in report.reason
    assert report.first_bad_id == bad_id  # row ids start at 1


def test_failed_append_writes_nothing_and_keeps_chain(url):
    log = AuditLog.open(url, chain_id="c")
    log.append([rec(0)])
    bad = [rec(1), rec(2), rec(3, inputs={"x": float("nan")})]  # NaN is not valid canonical JSON
    with pytest.raises(ValueError):
        log.append(bad)
    dup = [rec(4), rec(5)]
    conn = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
    conn.execute("CREATE TRIGGER boom BEFORE INSERT ON audit_log WHEN NEW.prediction_id = 'p5' "
                 "BEGIN SELECT RAISE(ABORT, 'boom'); END")  # fmt: skip
    with pytest.raises(sqlite3.DatabaseError, match="boom"):
        log.append(dup)  # fails on the 2nd row: the 1st must be rolled back too
    assert log.count() == 1
    conn.execute("DROP TRIGGER boom")
    log.append([rec(6)])
    assert log.count() == 2 and log.verify().ok


def test_read_inputs(url):
    log = AuditLog.open(url)
    log.append([rec(i) for i in range(10)])
    df = log.read_inputs(limit=4)
    assert len(df) == 4 and df["income"].tolist() == [1006.0, 1007.0, 1008.0, 1009.0]
    assert {"ts", "prediction_id", "model_version"} <= set(df.columns)
    since = log.read_inputs(limit=None, since="2026-01-01T00:00:08.000000Z")
    assert since["prediction_id"].tolist() == ["p8", "p9"]


def test_async_writer_group_commits(url):
    log = AuditLog.open(url)
    writer = AuditWriter(log)

    async def main():
        await asyncio.gather(*(writer.write([rec(i), rec(i + 100)]) for i in range(32)))
        with pytest.raises(ValueError):
            await writer.write([rec(500, output={"pd": float("inf")})])
        await writer.write([rec(999)])

    asyncio.run(main())
    asyncio.run(writer.write([rec(1000)]))  # a second loop: the writer's connection follows it
    writer.close()
    assert log.count() == 66
    assert writer.commits < 34  # concurrent callers shared transactions
    assert log.verify().ok
