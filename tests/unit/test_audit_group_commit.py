"""Group commit: concurrent writers share commits, and each write returns only once its record is durable."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from creditops.governance.audit import AuditAnchor, AuditLog, AuditRecord, AuditWriter

N = 64


def rec(i: int) -> AuditRecord:
    return AuditRecord(f"p{i}", "tiny", "tiny@1", {"x": i}, {"pd": 0.1}, [], "approve", "svc")


def visible(db: str, prediction_id: str) -> bool:
    """Read through a separate connection: only committed data is visible there."""
    with sqlite3.connect(db) as conn:
        return (
            conn.execute("SELECT 1 FROM audit_log WHERE prediction_id = ?", (prediction_id,)).fetchone()
            is not None
        )


async def _concurrent(writer: AuditWriter, db: str) -> list[bool]:
    async def one(i: int) -> bool:
        await writer.write([rec(i)])
        return visible(db, f"p{i}")  # durable as soon as write() returned

    return await asyncio.gather(*(one(i) for i in range(N)))


def test_concurrent_writes_share_commits_and_are_durable_on_return(tmp_path) -> None:
    db = str(tmp_path / "audit.db")
    anchor = tmp_path / "audit.anchor"
    log = AuditLog.open(f"sqlite:///{db}", anchor_path=anchor)
    writer = AuditWriter(log)
    seen = asyncio.run(_concurrent(writer, db))
    writer.close()
    assert all(seen)
    assert writer.commits < N, writer.commits  # group commit: fewer commits than writes
    heads, _ = AuditAnchor(anchor).heads()
    assert heads[log.chain_id][0] == N - 1  # the anchor was written for the last commit too
    assert log.verify().ok and log.count() == N
    print(f"group commit: {N} concurrent writes, {writer.commits} commits")


def test_sequential_writes_commit_one_each(tmp_path) -> None:
    # The control: without concurrency nothing can be grouped, so the counter really counts commits.
    db = str(tmp_path / "audit.db")
    writer = AuditWriter(AuditLog.open(f"sqlite:///{db}"))

    async def seq() -> None:
        for i in range(10):
            await writer.write([rec(i)])

    asyncio.run(seq())
    writer.close()
    assert writer.commits == 10


def test_a_failed_write_raises_and_is_not_anchored(tmp_path) -> None:
    anchor = tmp_path / "audit.anchor"
    log = AuditLog.open(f"sqlite:///{tmp_path}/a.db", anchor_path=anchor)
    writer = AuditWriter(log)
    bad = AuditRecord("p", "m", "v", {"x": float("nan")}, {}, [], "approve")  # NaN: not canonical JSON

    async def go() -> None:
        await writer.write([rec(1)])
        with pytest.raises(ValueError):
            await writer.write([bad])

    asyncio.run(go())
    writer.close()
    assert AuditAnchor(anchor).heads()[0][log.chain_id] == (0, log._head)
    assert log.verify().ok
