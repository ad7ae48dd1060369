"""The stream processor on real Redis: same features as batch, idempotent, nothing dropped."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import redis
from streaming_helpers import (
    application_events,
    batch_answer,
    context_at,
    latest_rows,
    newest_event,
    transaction_events,
)

from creditops.data.synthetic import generate_world
from creditops.features.registry import JOIN_KEY, TIMESTAMP, features_in
from creditops.streaming.consumer import StreamProcessor
from creditops.streaming.state import RedisEventState


@pytest.fixture(scope="module")
def world():
    return generate_world(150, seed=11)


@pytest.fixture
def state(redis_url, run_id, request):
    client = redis.Redis.from_url(redis_url)
    st = RedisEventState(client, prefix=f"creditops_test_{run_id}:{request.node.name}:")
    st.clear()
    yield st
    st.clear()
    client.close()


def _stream(world, state, transactions, batch=400, seed=0, context=None):
    """Applications first, then the transactions in a shuffled order, in batches."""
    processor = StreamProcessor(state, context=context)
    outcomes = [processor.process(application_events(world.applications))]
    order = np.random.default_rng(seed).permutation(len(transactions))
    events = transaction_events(transactions.iloc[order])
    for lo in range(0, len(events), batch):
        outcomes.append(processor.process(events[lo : lo + batch]))
    return processor, outcomes


def test_stream_equals_batch_for_every_feature(world, state):
    transactions = world.transactions
    points = newest_event(world, transactions)
    processor, outcomes = _stream(world, state, transactions, context=context_at(world, points))
    expected = batch_answer(world, transactions, points)
    for group in ("behavioural", "derived"):
        got = latest_rows(outcomes, group)
        # the last write of an applicant saw its whole history: recompute from state to compare all at once
        final = (
            processor.features(points[JOIN_KEY].to_numpy())[group]
            .sort_values(JOIN_KEY)
            .reset_index(drop=True)
        )
        want = expected[group].sort_values(JOIN_KEY).reset_index(drop=True)
        assert len(want) == len(points) == len(final)
        assert (final[JOIN_KEY].to_numpy() == want[JOIN_KEY].to_numpy()).all()
        assert (final[TIMESTAMP].to_numpy() == want[TIMESTAMP].to_numpy()).all()
        for feature in features_in(group):
            np.testing.assert_allclose(
                final[feature.name].to_numpy(float), want[feature.name].to_numpy(float), rtol=1e-9, atol=1e-9,
                err_msg=f"{group}.{feature.name}",
            )  # fmt: skip
        # and what was written last for each applicant is that same final row
        last = got.set_index(JOIN_KEY).loc[final[JOIN_KEY]]
        touched = last[TIMESTAMP].to_numpy() == final[TIMESTAMP].to_numpy()
        assert touched.mean() > 0.5
    total = sum(o.events for o in outcomes)
    assert total == len(world.applications) + len(transactions)
    # shuffled: a transaction older than any window its applicant's newest event allows is counted expired
    assert sum(o.applied + o.expired for o in outcomes) == total
    assert sum(o.duplicates for o in outcomes) == 0
    assert sum(o.dead_lettered for o in outcomes) == 0


def test_a_late_transaction_changes_the_newest_window(world, state):
    """An out-of-order event inside the window must change the features, not be ignored as older."""
    processor = StreamProcessor(state)
    processor.process(application_events(world.applications))
    applicant = int(world.transactions["applicant_id"].value_counts().index[0])
    txs = world.transactions[world.transactions["applicant_id"] == applicant].sort_values("transaction_ts")
    late = txs.iloc[[-2]]  # older than the newest, inside its window
    processor.process(transaction_events(txs.drop(index=late.index)))
    before = processor.features(np.array([applicant]))["behavioural"]
    out = processor.process(transaction_events(late))
    after = out.tables["behavioural"]
    assert before[TIMESTAMP].iloc[0] == after[TIMESTAMP].iloc[0]
    assert before["monthly_transaction_count"].iloc[0] < after["monthly_transaction_count"].iloc[0]


def test_redelivered_events_change_nothing(world, state):
    processor = StreamProcessor(state)
    processor.process(application_events(world.applications))
    events = transaction_events(world.transactions.iloc[:600])
    first = processor.process(events)
    again = processor.process(events)
    assert (first.applied, first.duplicates) == (600, 0)
    assert (again.applied, again.dead_lettered) == (0, 0)
    assert again.duplicates + again.expired == 600
    assert again.duplicates > 0
    for group in ("behavioural",):
        pd.testing.assert_frame_equal(first.tables[group], again.tables[group])
    third = processor.process(events)
    assert (third.applied, third.duplicates, third.expired) == (0, again.duplicates, again.expired)
    stored = state.transactions(world.transactions["applicant_id"].unique(), prune=False)
    assert len(stored) == 600 - again.expired


def test_corrupted_stream_dead_letters_every_bad_event_with_its_reason(world, state):
    known = world.applications["applicant_id"].to_numpy()
    processor = StreamProcessor(state, known_applicants=lambda ids: np.isin(ids, known))
    newest = world.transactions.sort_values("transaction_ts").groupby("applicant_id").tail(3)
    good = newest.iloc[:50]  # inside their applicants' windows: none can expire
    events = transaction_events(good)
    template = json.loads(events[0])
    ts = "transaction_ts"
    bad = {
        "not json": b"{not json",
        "a list": b"[1, 2]",
        "unknown kind": json.dumps({**template, "kind": "payment"}).encode(),
        "negative amount": json.dumps({**template, "transaction_id": 10**9, "amount": -5.0}).encode(),
        "unknown type": json.dumps({**template, "transaction_id": 10**9 + 1, "type": "bitcoin"}).encode(),
        "orphan": json.dumps({**template, "transaction_id": 10**9 + 2, "applicant_id": 10**8}).encode(),
        "future": json.dumps({**template, "transaction_id": 10**9+3, ts: "2031-01-01T00:00:00Z"}).encode(),
        "bad ts": json.dumps({**template, "transaction_id": 10**9 + 4, ts: "yesterday"}).encode(),
        "null id": json.dumps({**template, "transaction_id": None}).encode(),
        "extra field": json.dumps({**template, "transaction_id": 10**9 + 5, "colour": "red"}).encode(),
        "conflict": json.dumps({**template, "amount": template["amount"] + 1}).encode(),
    }  # fmt: skip
    processor.now = lambda: pd.Timestamp("2030-01-01", tz="UTC")
    processor.process(events)  # the good ones first; "conflict" reuses the first id with other content
    out = processor.process([*events[:10], *bad.values(), events[0]])  # events[0] twice in one batch
    assert out.events == 11 + len(bad)
    assert out.duplicates == 11 and out.applied == 0 and out.expired == 0
    assert out.dead_lettered == len(bad)
    assert out.events == out.applied + out.duplicates + out.dead_lettered
    reasons = {name: r.reason for name, (pos, r) in zip(bad, out.rejected, strict=True)}
    assert [pos for pos, _ in out.rejected] == list(range(10, 10 + len(bad)))
    expected_rule = {
        "not json": "schema", "a list": "schema", "unknown kind": "schema", "negative amount": "range",
        "unknown type": "category", "orphan": "orphan", "future": "future_timestamp", "bad ts": "type",
        "null id": "null", "extra field": "schema", "conflict": "duplicate_key",
    }  # fmt: skip
    for name, rule in expected_rule.items():
        assert reasons[name].startswith(rule), (name, reasons[name])


def _tx(tx_id, applicant, ts, amount=10.0, kind="card_purchase"):
    return {
        "transaction_id": tx_id,
        "applicant_id": applicant,
        "transaction_ts": ts,
        "amount": amount,
        "type": kind,
        "is_late": False,
    }


def test_state_prunes_exactly_what_is_at_or_before_the_horizon(state):
    newest = pd.Timestamp("2026-06-01T12:00:00.123456789", tz="UTC")
    horizon = newest - pd.Timedelta(days=365)
    one_ns = pd.Timedelta(1, "ns")
    rows = [
        _tx(1, 7, newest),
        _tx(2, 7, horizon),  # exactly at the horizon: pruned
        _tx(3, 7, horizon + one_ns),  # one nanosecond inside the window: kept
        _tx(4, 7, horizon - pd.Timedelta(days=400)),  # far before: pruned
        _tx(5, 8, pd.Timestamp("1969-12-31T23:59:59", tz="UTC")),  # a negative epoch time: alone, kept
        _tx(6, 9, newest),  # nothing old
    ]
    added = state.add_transactions(pd.DataFrame(rows))
    assert added.new.all()
    read = state.transactions([7, 8, 9, 10])
    assert len(read) == 6  # the read returns everything stored, what it prunes included
    kept = state.transactions([7, 8, 9, 10], prune=False)
    got = set(zip(kept["applicant_id"], kept["transaction_ts"], strict=True))
    assert got == {
        (r["applicant_id"], r["transaction_ts"]) for r in rows if r["transaction_id"] not in (2, 4)
    }
    # the horizon is recorded: a late event at or before it is expired, one after it is stored
    again = state.add_transactions(
        pd.DataFrame([_tx(2, 7, horizon), _tx(11, 7, horizon), _tx(12, 7, horizon + one_ns)])
    )
    assert again.expired.tolist() == [True, True, False] and again.new.tolist() == [False, False, True]
    # a horizon before 1970 (negative ns) and times of fewer digits: compared as numbers, not as text
    early = pd.Timestamp("1970-03-01", tz="UTC")
    early_horizon = early - pd.Timedelta(days=365)
    state.add_transactions(pd.DataFrame([_tx(21, 30, early), _tx(22, 30, early_horizon - one_ns)]))
    state.transactions([30])  # prunes tx 22 and records the negative horizon
    late = state.add_transactions(
        pd.DataFrame(
            [
                _tx(23, 30, early_horizon),  # at the horizon
                _tx(24, 30, early_horizon - pd.Timedelta(days=1)),  # before it, more digits
                _tx(25, 30, early_horizon + one_ns),  # inside the window
                _tx(26, 30, pd.Timestamp("1970-01-01T00:00:00.5", tz="UTC")),  # positive, fewer digits
            ]
        )
    )
    assert late.expired.tolist() == [True, True, False, False]
    assert late.new.tolist() == [False, False, True, True]


def test_state_add_tells_new_redelivered_and_conflicting_in_one_batch(state):
    ts = pd.Timestamp("2026-06-01", tz="UTC")
    first = state.add_transactions(pd.DataFrame([_tx(1, 7, ts), _tx(2, 7, ts)]))
    assert first.new.tolist() == [True, True]
    batch = pd.DataFrame(
        [
            _tx(1, 7, ts),  # redelivered
            _tx(2, 7, ts, amount=11.0),  # same id, other content
            _tx(3, 7, ts),  # new
            _tx(3, 7, ts),  # the new one again in the same batch: a redelivery
            _tx(4, 8, ts),  # new
            _tx(4, 8, ts, kind="salary"),  # the same batch's new id with other content
        ]
    )
    out = state.add_transactions(batch)
    assert out.new.tolist() == [False, False, True, False, True, False]
    assert out.duplicate.tolist() == [True, False, False, True, False, False]
    assert out.conflict.tolist() == [False, True, False, False, False, True]
    assert not out.expired.any()
    stored = state.transactions([7, 8], prune=False)
    assert sorted(stored["amount"].tolist()) == [10.0] * 4 and set(stored["type"]) == {"card_purchase"}


def _hash_and_log(state, applicant):
    """The records a history's hash holds and the ones its log holds, both sorted."""
    from creditops.streaming.state import _RECORD

    values = state.client.hvals(state._tx_key(applicant))
    log = state.client.get(state._log_key(applicant)) or b""
    as_bytes = sorted(v for v in values)
    size = _RECORD.itemsize
    return as_bytes, sorted(log[i : i + size] for i in range(0, len(log), size))


def test_state_log_holds_exactly_the_history_through_redelivery_conflict_and_prune(state):
    newest = pd.Timestamp("2026-06-01", tz="UTC")
    old = newest - pd.Timedelta(days=500)
    state.add_transactions(pd.DataFrame([_tx(1, 7, newest), _tx(2, 7, old), _tx(3, 7, newest)]))
    # redelivered, conflicting and expired-after-prune events append nothing
    state.add_transactions(pd.DataFrame([_tx(1, 7, newest), _tx(3, 7, newest, amount=99.0)]))
    hashed, logged = _hash_and_log(state, 7)
    assert len(hashed) == 3 and hashed == logged
    state.transactions([7])  # prunes tx 2 from both
    state.add_transactions(pd.DataFrame([_tx(2, 7, old), _tx(4, 7, newest)]))  # 2 is expired now
    hashed, logged = _hash_and_log(state, 7)
    assert len(hashed) == 3 and hashed == logged
    assert set(state.transactions([7], prune=False)["amount"]) == {10.0}


def test_a_prune_not_waited_for_is_done_before_the_state_next_reads_or_writes(state):
    newest = pd.Timestamp("2026-06-01", tz="UTC")
    old = newest - pd.Timedelta(days=400)
    state.add_transactions(pd.DataFrame([_tx(1, 7, newest), _tx(2, 7, old)]))
    owner, records, _ = state.history_records([7])
    state.prune_records(owner, records, wait=False)
    assert state._sent is not None  # sent, its reply not read yet
    # the next write follows it: tx 2 is at or before the recorded horizon, so expired, not stored again
    again = state.add_transactions(pd.DataFrame([_tx(2, 7, old)]))
    assert state._sent is None and again.expired.tolist() == [True]
    hashed, logged = _hash_and_log(state, 7)
    assert len(hashed) == 1 and hashed == logged
    # the server lost its scripts (SCRIPT FLUSH, a restart): the prune's reply is NOSCRIPT, and the
    # settling call loads the script and runs the prune again
    state.add_transactions(pd.DataFrame([_tx(3, 8, newest), _tx(4, 8, old)]))
    owner, records, _ = state.history_records([8])
    state.client.script_flush()
    state.prune_records(owner, records, wait=False)
    state.settle()
    assert state.transactions([8], prune=False)["transaction_ts"].tolist() == [newest]
    # an error reply other than NOSCRIPT is raised by the settling call, and the connection is not reused
    state.add_transactions(pd.DataFrame([_tx(5, 9, newest), _tx(6, 9, old)]))
    owner, records, _ = state.history_records([9])
    state.client.set(state._log_key(9), b"x")
    state.client.delete(state._tx_key(9))
    state.client.set(state._tx_key(9), b"not a hash")
    state.prune_records(owner, records, wait=False)
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        state.settle()
    assert state._sent is None and state.client.ping()


def test_a_prune_keeps_what_was_appended_after_its_read(state):
    newest = pd.Timestamp("2026-06-01", tz="UTC")
    state.add_transactions(pd.DataFrame([_tx(1, 7, newest), _tx(2, 7, newest - pd.Timedelta(days=400))]))
    owner, records, _ = state.history_records([7])
    # another consumer appends between this one's read and its prune
    state.add_transactions(pd.DataFrame([_tx(3, 7, newest + pd.Timedelta(hours=1))]))
    state.prune_records(owner, records)
    kept = state.transactions([7], prune=False)
    assert sorted(kept["transaction_ts"]) == [newest, newest + pd.Timedelta(hours=1)]
    hashed, logged = _hash_and_log(state, 7)
    assert len(hashed) == 2 and hashed == logged


def test_a_state_of_another_layout_is_refused_not_misread(redis_url, run_id):
    from creditops.errors import ConfigError

    client = redis.Redis.from_url(redis_url)
    prefix = f"creditops_test_{run_id}:layout:"
    try:
        client.hset(f"{prefix}horizon", "7", "0")  # what a pruned state of the first layout left
        client.hset(f"{prefix}tx:7", "1", b"x" * 18)
        with pytest.raises(ConfigError, match="layout 1"):
            RedisEventState(client, prefix=prefix).history_records([7])
        client.set(f"{prefix}layout", "9")
        with pytest.raises(ConfigError, match="layout b'9'"):
            RedisEventState(client, prefix=prefix).add_transactions(
                pd.DataFrame([_tx(1, 7, pd.Timestamp.now("UTC"))])
            )
        assert client.hget(f"{prefix}tx:7", "1") == b"x" * 18  # nothing written
    finally:
        RedisEventState(client, prefix=prefix).clear()
        client.close()


def test_a_cleared_state_is_claimed_again_by_its_next_write(state):
    newest = pd.Timestamp("2026-06-01", tz="UTC")
    state.add_transactions(pd.DataFrame([_tx(1, 7, newest), _tx(2, 7, newest - pd.Timedelta(days=400))]))
    state.clear()
    state.add_transactions(pd.DataFrame([_tx(1, 7, newest), _tx(2, 7, newest - pd.Timedelta(days=400))]))
    state.transactions([7])  # prunes: the horizon hash exists again
    # another process on the same prefix: the layout mark was written again, so nothing is refused
    again = RedisEventState(state.client, prefix=state.prefix.decode())
    assert len(again.transactions([7], prune=False)) == 1


@pytest.mark.parametrize("n", [7, 150])  # a pipeline of EXISTS up to 100 keys, a script call above
def test_exists_many_tells_each_key(state, n):
    from creditops.streaming.state import exists_many

    keys = [state.prefix + b"exists:%d" % i for i in range(n)]
    present = np.arange(n) % 3 == 1
    for key in np.asarray(keys, dtype=object)[present]:
        state.client.set(key, b"1")
    got = exists_many(state.client, keys)
    assert got.dtype == bool and got.tolist() == present.tolist()
    assert exists_many(state.client, []).shape == (0,)
