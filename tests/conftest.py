"""Shared fixtures: a fresh Postgres database and a fresh Redis namespace for every test run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis

PG_ADMIN = os.environ.get("CREDITOPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CREDITOPS_TEST_REDIS", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:8]

# tests/alibi run inside the separate BSL-licensed alibi environment (.venv-alibi), never in the core one.
collect_ignore = ["alibi"]


@pytest.fixture(scope="session")
def run_id() -> str:
    """A short id unique to this test run (database names, Redis prefixes, Feast projects)."""
    return RUN_ID


@pytest.fixture(scope="session")
def pg_url(run_id: str) -> Iterator[str]:
    """URL of a fresh Postgres database, dropped when the run ends."""
    name = f"creditops_test_{run_id}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url(run_id: str) -> Iterator[str]:
    """Redis URL; keys written under this run's prefix ``creditops_test_<run_id>`` are deleted at the end."""
    yield REDIS_URL
    client = redis.Redis.from_url(REDIS_URL)
    for pattern in (f"*creditops_test_{run_id}*",):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
