"""The retraining additions: ``champion_not_worse``, the recent window, the run settings."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from governance_helpers import make_bundle

from creditops.artifact import Bundle, load_bundle
from creditops.config import GatesConfig, load_config
from creditops.errors import ConfigError, DataError
from creditops.governance.gates import champion_gate, evaluate_gates
from creditops.governance.registry import promote, register
from creditops.training.retraining import recent_window, run_settings, with_champion_gate


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame]:
    """A good model and one trained on shuffled labels, with the same held-out frame."""
    good_dir, test = make_bundle(Path(tmp_path_factory.mktemp("good")) / "bundle")
    worse_dir, same_test = make_bundle(Path(tmp_path_factory.mktemp("worse")) / "bundle", random_model=True)
    pd.testing.assert_frame_equal(test, same_test)
    return good_dir, worse_dir, test


def test_a_challenger_worse_than_the_champion_fails(models: tuple[Path, Path, pd.DataFrame]) -> None:
    good_dir, worse_dir, test = models
    gate = champion_gate(load_bundle(worse_dir), load_bundle(good_dir), test, tolerance=0.005)
    assert gate.status == "fail" and not gate.passed
    assert gate.value < -0.1  # shuffled labels: AUC near 0.5 against a real model's
    assert "challenger" in gate.detail and "champion" in gate.detail
    assert "champion_not_worse" in gate.describe() and "FAILED" in gate.describe()


def test_a_better_or_equal_challenger_passes(models: tuple[Path, Path, pd.DataFrame]) -> None:
    good_dir, worse_dir, test = models
    better = champion_gate(load_bundle(good_dir), load_bundle(worse_dir), test, tolerance=0.005)
    assert better.status == "pass" and better.value > 0.1
    same = champion_gate(load_bundle(good_dir), load_bundle(good_dir), test, tolerance=0.0)
    assert same.status == "pass" and same.value == 0.0


def test_no_champion_is_not_applicable(models: tuple[Path, Path, pd.DataFrame]) -> None:
    good_dir, _, test = models
    gate = champion_gate(load_bundle(good_dir), None, test, tolerance=0.005)
    assert gate.status == "not_applicable" and gate.passed and math.isnan(gate.value)


def test_a_hold_out_without_the_champions_inputs_blocks(models: tuple[Path, Path, pd.DataFrame]) -> None:
    good_dir, _, test = models
    champion: Bundle = load_bundle(good_dir)
    dropped = champion.manifest.features[0]
    challenger = load_bundle(good_dir)
    challenger.manifest = challenger.manifest.model_copy(update={"features": champion.manifest.features[1:]})
    gate = champion_gate(challenger, champion, test.drop(columns=[dropped]), tolerance=0.005)
    assert gate.status == "not_assessed" and not gate.passed and dropped in gate.detail


def test_the_registrys_champion_is_what_the_challenger_is_judged_against(
    models: tuple[Path, Path, pd.DataFrame], tmp_path: Path
) -> None:
    good_dir, worse_dir, test = models
    settings = load_config(None, {"workdir": str(tmp_path), "mlflow": {"model_name": "credit-pd-test"}})
    settings = settings.resolved()
    lenient = GatesConfig(min_auc=0.0, max_fpr=1.0, min_recall=0.0, max_perturbation_shift=1.0)
    worse, good = load_bundle(worse_dir), load_bundle(good_dir)
    first = with_champion_gate(evaluate_gates(good, test, lenient), good, test, settings)
    assert first.gate("champion_not_worse").status == "not_applicable"  # empty registry
    uri = settings.mlflow.tracking_uri
    version = register(good_dir, first, uri, "credit-pd-test", artifact_location=str(tmp_path / "art"))
    promote(uri, "credit-pd-test", version, promoted_by="test")

    report = with_champion_gate(evaluate_gates(worse, test, lenient), worse, test, settings)
    gate = report.gate("champion_not_worse")
    assert gate.status == "fail" and not report.passed
    assert report.metrics["champion_version"] == float(version)
    assert f"v{version}" in gate.detail and "champion_not_worse" in report.summary()
    assert report.metrics["champion_score_psi"] > 0.1  # a model on shuffled labels scores unlike the champion

    # the validated score shift travels with the registered challenger to its canary
    from creditops.deploy.commands import validated_score_psi

    same = with_champion_gate(evaluate_gates(good, test, lenient), good, test, settings)
    assert same.passed and same.metrics["champion_score_psi"] < 0.01
    v2 = register(good_dir, same, uri, "credit-pd-test", artifact_location=str(tmp_path / "art"))
    expected = validated_score_psi(uri, "credit-pd-test", v2, version)
    assert expected == pytest.approx(same.metrics["champion_score_psi"])
    assert validated_score_psi(uri, "credit-pd-test", v2, "99") is None  # measured against another champion
    assert validated_score_psi(uri, "credit-pd-test", version, version) is None  # never measured


def test_recent_window_keeps_the_last_months() -> None:
    when = pd.date_range("2024-01-01", "2025-12-31", freq="7D", tz="UTC")
    frame = pd.DataFrame({"applicant_id": range(len(when)), "event_timestamp": when})
    recent = recent_window(frame, 12)
    assert recent["event_timestamp"].min() > when.max() - pd.Timedelta(days=366)
    assert recent["event_timestamp"].min() < when.max() - pd.Timedelta(days=358)
    assert len(recent_window(frame, 3)) < len(recent) < len(frame)
    with pytest.raises(DataError, match="window_months"):
        recent_window(frame, 0)


def test_typed_parameters_win_over_the_config(tmp_path: Path) -> None:
    base = load_config(None, {"workdir": str(tmp_path), "training": {"cv_folds": 3}}).resolved()
    settings = run_settings(base.model_dump_json(), "", "german_credit", 500, 3, 2)
    assert (settings.data.source, settings.data.n_applicants, settings.data.seed) == ("german_credit", 500, 3)
    assert settings.training.n_trials == 2 and settings.training.cv_folds == 3  # the rest kept
    assert settings.workdir == base.workdir
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  cv_folds: 4\n")
    assert run_settings(str(path), str(tmp_path), "synthetic", 100, 7, 5).training.cv_folds == 4
    with pytest.raises(ConfigError, match="n_applicants"):
        run_settings("", str(tmp_path), "synthetic", 10, 7, 5)
