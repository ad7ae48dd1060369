"""The stream's record fast path (``clean_records``) and the batch validator (``validate_table``) agree.

Every event is judged both ways: an event the fast path passes is one ``validate_table`` accepts, with the
same accepted row (values and dtypes); an event breaking a rule (each kind) is never passed by the fast
path, and the stream dead-letters it with the batch validator's reason.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from creditops.data.schema import WORLD_SCHEMAS
from creditops.data.synthetic import generate_world
from creditops.data.validation import clean_records, validate_table
from creditops.streaming.events import _STREAM_SCHEMAS, encode_applications, validate_events

NOW = pd.Timestamp("2030-01-01", tz="UTC")
GOOD = {
    "transaction_id": 17,
    "applicant_id": 3,
    "transaction_ts": "2026-11-30T10:00:00.123456789+00:00",
    "amount": 42.5,
    "type": "card_purchase",
    "is_late": False,
}
# every kind of break validate_table reports for an event's columns, with the rule it must report
BROKEN = {
    "amount as text": ({"amount": "n/a"}, "type"),
    "fractional id": ({"transaction_id": 1.5}, "type"),
    "unparseable ts": ({"transaction_ts": "yesterday"}, "type"),
    "month 13": ({"transaction_ts": "2026-13-01T00:00:00Z"}, "type"),
    "year 3000": ({"transaction_ts": "3000-01-01T00:00:00Z"}, "type"),
    "flag as text": ({"is_late": "maybe"}, "type"),
    "missing amount": ({"amount": None}, "null"),
    "null id": ({"transaction_id": None}, "null"),
    "negative amount": ({"amount": -5.0}, "range"),
    "zero amount (exclusive bound)": ({"amount": 0}, "range"),
    "huge amount": ({"amount": 1e9}, "range"),
    "infinite amount": ({"amount": float("inf")}, "range"),
    "negative applicant": ({"applicant_id": -1}, "range"),
    "unknown type": ({"type": "bitcoin"}, "category"),
    "future": ({"transaction_ts": "2031-01-01T00:00:00Z"}, "future_timestamp"),
    "just after now": ({"transaction_ts": "2030-01-01T00:00:00.000000001Z"}, "future_timestamp"),
}
# valid for validate_table, in a form the fast path leaves to it
UNUSUAL_BUT_VALID = {
    "amount as numeric text": {"amount": "42.5"},
    "integral float id": {"transaction_id": 17.0},
    "flag as text": {"is_late": "true"},
    "flag as 1": {"is_late": 1},
    "other offset": {"transaction_ts": "2026-11-30T12:00:00+02:00"},
    "space separated": {"transaction_ts": "2026-11-30 10:00:00"},
}
# valid, and in the plain form the fast path passes
PLAIN_VALID = {
    "as given": {},
    "Z suffix": {"transaction_ts": "2026-11-30T10:00:00Z"},
    "milliseconds": {"transaction_ts": "2026-11-30T10:00:00.5+00:00"},
    "microseconds": {"transaction_ts": "2026-11-30T10:00:00.000001Z"},
    "exactly now": {"transaction_ts": "2030-01-01T00:00:00Z"},
    "integral amount": {"amount": 40},
    "largest amount": {"amount": 1e8},
    "late": {"is_late": True},
    "salary": {"type": "salary"},
}


def _batch(records: list[dict], table: str = "transactions") -> pd.DataFrame | None:
    """validate_table's accepted rows of these records (as the stream built its frame), None if any failed."""
    frame = pd.DataFrame(records, columns=[c.name for c in WORLD_SCHEMAS[table].columns])
    result = validate_table(frame, _STREAM_SCHEMAS[table], now=NOW)
    return result.accepted[table] if result.ok else None


def _rule(record: dict) -> str:
    frame = pd.DataFrame([record], columns=[c.name for c in WORLD_SCHEMAS["transactions"].columns])
    return validate_table(frame, _STREAM_SCHEMAS["transactions"], now=NOW).quarantine["rule"].iloc[0]


@pytest.mark.parametrize("name", list(PLAIN_VALID))
def test_fast_path_passes_a_plain_valid_event_exactly_as_the_batch_validator_accepts_it(name):
    record = {**GOOD, **PLAIN_VALID[name]}
    fast = clean_records([record], _STREAM_SCHEMAS["transactions"], now=NOW)
    assert fast is not None
    pd.testing.assert_frame_equal(fast, _batch([record]))


@pytest.mark.parametrize("name", list(BROKEN))
def test_fast_path_never_passes_an_event_breaking_a_rule(name):
    change, rule = BROKEN[name]
    record = {**GOOD, **change}
    assert _batch([record]) is None and _rule(record) == rule  # the case breaks the rule it names
    assert clean_records([record], _STREAM_SCHEMAS["transactions"], now=NOW) is None
    # nor a batch of good events holding it
    batch = [{**GOOD, "transaction_id": i} for i in range(5)] + [record]
    assert clean_records(batch, _STREAM_SCHEMAS["transactions"], now=NOW) is None


def test_a_missing_field_breaks_null_on_both_paths():
    record = {k: v for k, v in GOOD.items() if k != "type"}
    assert _batch([record]) is None and _rule(record) == "null"
    assert clean_records([record], _STREAM_SCHEMAS["transactions"], now=NOW) is None


@pytest.mark.parametrize("name", list(UNUSUAL_BUT_VALID))
def test_fast_path_leaves_an_unusual_valid_event_to_the_batch_validator(name):
    record = {**GOOD, **UNUSUAL_BUT_VALID[name]}
    assert _batch([record]) is not None
    assert clean_records([record], _STREAM_SCHEMAS["transactions"], now=NOW) is None
    batch = validate_events([json.dumps({"kind": "transaction", **record}).encode()], now=NOW)
    assert batch.rejected == [] and len(batch.tables["transactions"]) == 1


def test_random_events_get_the_same_verdict_and_rows_on_both_paths():
    """Events with fields drawn from valid, broken and unusual values: the fast path never passes one the
    batch validator rejects, and passes every one of the plain valid ones."""
    pools = {}
    for change in [*PLAIN_VALID.values(), *UNUSUAL_BUT_VALID.values(), *(c for c, _ in BROKEN.values())]:
        for field, value in change.items():
            pools.setdefault(field, []).append(value)
    rng = np.random.default_rng(3)
    plain = {
        f: {(type(v), v) for c in [GOOD, *PLAIN_VALID.values()] for k, v in c.items() if k == f} for f in GOOD
    }
    passed = 0
    for i in range(300):
        record = dict(GOOD, transaction_id=i)
        for field in rng.choice(list(pools), size=rng.integers(0, 3), replace=False):
            record[field] = pools[field][rng.integers(len(pools[field]))]
        fast = clean_records([record], _STREAM_SCHEMAS["transactions"], now=NOW)
        batch = _batch([record])
        if fast is not None:
            passed += 1
            assert batch is not None, record
            pd.testing.assert_frame_equal(fast, batch)
        elif (
            type(record["transaction_id"]) is int
            and record["transaction_id"] < 2**63
            and all((type(record[f]), record[f]) in plain[f] for f in GOOD if f != "transaction_id")
        ):
            pytest.fail(f"a plain valid event left to the batch validator: {record}")
    assert 30 < passed < 270  # both verdicts were exercised


def test_a_clean_batch_gives_the_batch_validators_rows_and_dtypes():
    """Many events at once, amounts all integral (the frame infers int64) and mixed (float64)."""
    records = [{**GOOD, "transaction_id": i, "amount": 10 + i} for i in range(60)]
    for batch in (records, [{**r, "amount": r["amount"] + 0.25 * (i % 2)} for i, r in enumerate(records)]):
        fast = clean_records(batch, _STREAM_SCHEMAS["transactions"], now=NOW)
        pd.testing.assert_frame_equal(fast, _batch(batch))
    pd.testing.assert_frame_equal(
        clean_records(records, _STREAM_SCHEMAS["transactions"]),  # no clock: the future rule is skipped
        _batch(records),
    )


def test_applications_pass_the_fast_path_as_the_batch_validator_accepts_them():
    apps = generate_world(40, seed=3).applications
    records = [json.loads(e) for e in encode_applications(apps)]
    for r in records:
        del r["kind"]
    fast = clean_records(records, _STREAM_SCHEMAS["applications"], now=NOW)
    assert fast is not None
    pd.testing.assert_frame_equal(fast, _batch(records, "applications"))
    bad = [*records[:5], {**records[5], "purpose": "yacht"}]
    assert clean_records(bad, _STREAM_SCHEMAS["applications"], now=NOW) is None


def test_a_bad_event_in_a_batch_is_dead_lettered_with_the_batch_validators_reason():
    good = [{**GOOD, "transaction_id": i} for i in range(8)]
    bad = {
        name: {**GOOD, "transaction_id": 100 + k, **change}
        for k, (name, (change, _)) in enumerate(BROKEN.items())
    }
    records = [*good[:4], *bad.values(), *good[4:]]
    raws = [json.dumps({"kind": "transaction", **r}).encode() for r in records]
    out = validate_events(raws, now=NOW)
    frame = pd.DataFrame(records, columns=[c.name for c in WORLD_SCHEMAS["transactions"].columns])
    expected = validate_table(frame, _STREAM_SCHEMAS["transactions"], now=NOW)
    want = {int(r.row_number): f"{r.rule}: {r.detail}" for r in expected.quarantine.itertuples()}
    assert {pos: r.reason for pos, r in out.rejected} == want
    assert [pos for pos, _ in out.rejected] == list(range(4, 4 + len(bad)))
    for (pos, rejected), (_, rule) in zip(out.rejected, BROKEN.values(), strict=True):
        assert rejected.rule == rule and rejected.raw == raws[pos]
    accepted = out.tables["transactions"]
    assert accepted["transaction_id"].tolist() == list(range(8))
    pd.testing.assert_frame_equal(accepted.drop(columns="event_index"), expected.accepted["transactions"])
    clean = validate_events([raws[i] for i in (0, 1, 2, 3, 20, 21, 22, 23)], now=NOW).tables["transactions"]
    pd.testing.assert_frame_equal(clean.drop(columns="event_index"), _batch(good))


@pytest.mark.parametrize(
    ("raw", "rule", "names"),
    [
        # not JSON, but what Python's json writes and reads: the field rules judge it
        (json.dumps({"kind": "transaction", **GOOD, "amount": float("nan")}).encode(), "null", "amount"),
        (
            json.dumps({"kind": "transaction", **GOOD, "transaction_id": 2**70}).encode(),
            "type",
            "transaction_id",
        ),
        (b"{oops", "schema", "JSON"),
        (b"\xff\xfe", "schema", "JSON"),
        (b"[1, 2]", "schema", "JSON object"),
    ],
)
def test_events_orjson_refuses_are_judged_by_the_field_rules_when_json_reads_them(raw, rule, names):
    # an id beyond int64 was accepted (as a float or uint64) and broke the state's int64 packing
    batch = validate_events([raw], now=NOW)
    assert len(batch.rejected) == 1 and batch.accepted == 0
    reason = batch.rejected[0][1].reason
    assert reason.split(":")[0] == rule and names in reason, reason


def test_batch_validation_refuses_integers_beyond_int64():
    frame = pd.DataFrame([{**GOOD, "transaction_id": 1}, {**GOOD, "transaction_id": 2**63}])
    out = validate_table(frame, _STREAM_SCHEMAS["transactions"], now=NOW)
    assert out.accepted["transactions"]["transaction_id"].tolist() == [1]
    assert out.quarantine["rule"].tolist() == ["type"] and "64-bit" in out.quarantine["detail"].iloc[0]
