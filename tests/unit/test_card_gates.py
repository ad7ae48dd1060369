"""The model card's gate, fairness and decision-policy sections say what the gates found, word for word."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from governance_helpers import FEATURES, build_bundle, world_split

from creditops.artifact import Bundle
from creditops.config import GatesConfig
from creditops.governance import model_card
from creditops.governance.gates import GateReport, evaluate_gates


@pytest.fixture(scope="module")
def world() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return world_split(4000, seed=0)


@pytest.fixture(scope="module")
def good(world, tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, GateReport, str]:
    train, valid, test = world
    bundle = build_bundle(tmp_path_factory.mktemp("card") / "b", train, valid)
    report = evaluate_gates(bundle, test, GatesConfig())
    markdown, _ = model_card.render(bundle, report, test_df=test.head(500))
    return bundle, report, markdown


def _row(markdown: str, gate: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith(f"| {gate} |"))


def test_gate_table_prints_the_status_word(good: tuple[Bundle, GateReport, str]) -> None:
    _, report, markdown = good
    assert "| gate | value | required | result | detail |" in markdown
    assert "| pass |" in _row(markdown, "auc")
    baseline = _row(markdown, "baseline_not_worse")  # no training evidence: nothing to judge
    assert "| not applicable |" in baseline and "| pass |" not in baseline
    eo = _row(markdown, "equal_opportunity_difference.age_band")  # ~75 defaulters per band: too few
    assert "| not assessed |" in eo and "| pass |" not in eo
    assert "PASSED all gates that could be judged" in markdown and report.counts() in markdown


def test_card_says_which_protected_attribute_was_not_assessed(good: tuple[Bundle, GateReport, str]) -> None:
    _, report, markdown = good
    assert "age_band" in report.unassessed
    assert (
        "**Fairness not (fully) assessed**: age_band: not assessed: equal_opportunity_difference" in markdown
    )
    # the per-attribute table carries the adverse impact ratio and the per-group "assessed" column
    assert "adverse impact ratio" in markdown and "result (AIR)" in markdown
    assert "| positives | approval_rate | impact_ratio | assessed |" in markdown
    assert "| yes |" in markdown


def test_card_shows_the_decision_policy_and_its_thresholds(good: tuple[Bundle, GateReport, str]) -> None:
    bundle, report, markdown = good
    t = bundle.manifest.thresholds
    assert "## Decision policy" in markdown
    assert f"Approve when PD < {t.approve_below_pd:.4g}; refer to an underwriter" in markdown
    assert f"decline when PD >= {t.decline_at_or_above_pd:.4g}" in markdown
    assert "policy target_fpr" in markdown and "review band" in markdown
    assert f"| review rate (test) | {report.metrics['review_rate']:.4g} |" in markdown
    assert "recall: defaulters declined" in markdown and "precision: declined who defaulted" in markdown


def test_card_claims_monotone_constraints_only_when_declared(
    world, good: tuple[Bundle, GateReport, str], tmp_path: Path
) -> None:
    _, _, markdown = good
    assert "monotone constraints on 3 of 4 features" in markdown
    train, valid, test = world
    free = build_bundle(tmp_path / "b", train, valid, monotone=False, directions=dict.fromkeys(FEATURES, 0))
    report = evaluate_gates(free, test, GatesConfig())
    card, _ = model_card.render(free, report, test_df=test.head(300))
    assert "no monotone constraints (no feature declares a direction)" in card
    assert "with monotone constraints" not in card
    assert "| not applicable |" in _row(card, "monotonicity")


def test_card_without_protected_attributes_does_not_claim_fairness_was_measured(
    world, good: tuple[Bundle, GateReport, str]
) -> None:
    bundle, _, _ = good
    test = world[2]
    report = evaluate_gates(bundle, test, GatesConfig(), protected=[])
    card, _ = model_card.render(bundle, report, test_df=test.head(300))
    assert "No protected attribute was assessed, so fairness was neither measured nor gated" in card
    assert "measured on outcomes and gated" not in card
    assert "fairness NOT ASSESSED" in report.summary()


def test_failed_gate_shows_fail_by_how_much(world, good: tuple[Bundle, GateReport, str]) -> None:
    bundle, _, _ = good
    test = world[2]
    report = evaluate_gates(bundle, test, GatesConfig(min_recall=0.9))
    card, _ = model_card.render(bundle, report, test_df=test.head(300))
    recall = report.gate("recall_at_threshold")
    assert f"| FAIL (by {recall.margin:.4g}) |" in _row(card, "recall_at_threshold")
    assert "FAILED 1 of" in card
