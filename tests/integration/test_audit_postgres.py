"""Audit log on a real Postgres: append-only trigger, tamper detection, atomicity, throughput."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from creditops.governance.audit import AuditLog, AuditRecord, AuditWriter


def rec(i: int, **over) -> AuditRecord:
    base = dict(
        prediction_id=f"p{i}",
        model_name="tiny",
        model_version="tiny@1",
        inputs={f"f{j}": float(i + j) / 7 for j in range(45)},
        output={"pd": 0.1, "score": 650.0, "decision": "approve"},
        explanation=[{"feature": "f1", "value": 1.0, "contribution": 0.2, "reason": "Income too low"}],
        decision="approve",
        caller_id="test",
    )
    base.update(over)
    return AuditRecord(**base)


@pytest.fixture
def pg_log(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS audit_log")
    log = AuditLog.open(pg_url, chain_id="pg-a")
    yield log
    log.close()


def test_postgres_chain_append_only_and_tamper(pg_log, pg_url):
    pg_log.append([rec(i) for i in range(5)])
    other = AuditLog.open(pg_url, chain_id="pg-b")
    other.append([rec(i) for i in range(3)])
    assert pg_log.count() == 8 and pg_log.verify().ok
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for sql in (
            "UPDATE audit_log SET decision = 'decline'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(sql)
        # A superuser can bypass the trigger deliberately; verify() must still catch the edit.
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        conn.execute("UPDATE audit_log SET inputs = replace(inputs, '\"f0\":0.0', '\"f0\":9.0') "
                     "WHERE chain_id = 'pg-a' AND seq = 0")  # fmt: skip
    report = pg_log.verify()
    assert not report.ok and "hash mismatch" in report.reason and "seq 0" in report.reason
    other.close()


def test_postgres_delete_detected(pg_log, pg_url):
    pg_log.append([rec(i) for i in range(5)])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        conn.execute("DELETE FROM audit_log WHERE seq = 2")
    report = pg_log.verify()
    assert not report.ok and "expected seq 2" in report.reason


def test_postgres_failed_batch_leaves_nothing(pg_log):
    pg_log.append([rec(0)])
    with pytest.raises(psycopg.Error):
        pg_log.append([rec(1), rec(2, prediction_id="bad\x00id")])  # NUL is rejected by COPY text
    assert pg_log.count() == 1
    pg_log.append([rec(3)])
    assert pg_log.verify().ok and pg_log.count() == 2


def test_postgres_bulk_append_and_group_commit(pg_log):
    # speed is bench/audit_commits.py's business; this shows a bulk append and shared commits stay a chain
    pg_log.append([rec(i) for i in range(5000)])

    writer = AuditWriter(pg_log)

    async def client(k: int) -> float:
        t = time.perf_counter()
        await writer.write([rec(10_000 + k)])
        return time.perf_counter() - t

    async def main():
        return await asyncio.gather(*(client(k) for k in range(64)))

    latencies = sorted(asyncio.run(main()))
    writer.close()
    print(f"64 concurrent writers: p50 {latencies[32] * 1e3:.1f} ms, max {latencies[-1] * 1e3:.1f} ms")
    assert pg_log.count() == 5064 and pg_log.verify().ok
    assert writer.commits < 64
    df = pg_log.read_inputs(limit=10)
    assert len(df) == 10 and "f44" in df.columns


def test_async_writer_on_postgres_isolates_a_bad_caller_and_survives_a_broken_connection(pg_log, pg_url):
    writer = AuditWriter(pg_log)
    bad = rec(7, prediction_id="bad\x00id")  # NUL: Postgres refuses the text, in the statement and in COPY
    holder = AuditLog.open(pg_url, chain_id="reader")  # counts through its own connection

    async def main() -> list[object]:
        await writer.start()
        # one group of 1 + 20 callers: the 20 go as COPY, the bad one fails alone, the others are committed
        first = asyncio.ensure_future(writer.write([rec(0)]))
        await asyncio.sleep(0)
        many = [writer.write([rec(i)]) for i in range(1, 20)] + [writer.write([bad])]
        results = await asyncio.gather(first, *many, return_exceptions=True)
        # a commit whose reply was lost: the head moves back as if the writer never heard of it
        seq, head = pg_log._seq, pg_log._head
        await writer.write([rec(100)])
        pg_log._seq, pg_log._head = seq, head
        with pytest.raises(psycopg.errors.UniqueViolation):
            await writer.write([rec(101)])  # collides with the lost commit's seq ...
        await writer.write([rec(102)])  # ... and the writer has re-read the head: it continues the chain
        # the server's connection is cut (Postgres restarted it): that write fails, the next reconnects
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = %s",
                (pg_log._db._aconn.info.backend_pid,),
            )
        with pytest.raises(psycopg.OperationalError):
            await writer.write([rec(103)])
        await writer.write([rec(104)])
        return results

    results = asyncio.run(main())
    writer.close()
    assert [r is None for r in results] == [True] * 20 + [False]
    assert isinstance(results[-1], psycopg.DataError)
    assert holder.count() == 20 + 3  # 0..19, 100, 102, 104
    report = holder.verify()
    assert report.ok, report.reason
    holder.close()
