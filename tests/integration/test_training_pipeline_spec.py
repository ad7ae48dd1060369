"""The training pipeline on a dataset-spec source (German Credit), through Feast, on the KFP local runner.

One small run (1,000 rows, 10 trials on the cross-validated small-data objective) at the default gates: the
model must come from the spec's FeatureService ``german_credit_v1`` without protected inputs, and the outcome
is definite: German Credit cross-validates near AUC 0.77, below the default 0.80, and with fewer than 100
applicants per class in its 100-row test set the AUC gate judges the CV estimate, so the model is NOT
registered and the ``auc`` gate is named. The same bundle is re-evaluated under a strict AUC gate (refused,
gate named) and a lenient config (registered): the gates, not the data source, decide.
"""

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from pipeline_helpers import regate_and_register

from creditops.artifact import load_bundle
from creditops.config import Settings, load_config
from creditops.governance.registry import tracking_uri_for

SMALL_RUN = {"data": {"source": "german_credit"}, "training": {"n_trials": 10}}


@pytest.fixture(scope="module")
def german_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, Any], Path]:
    from pipelines.local import run_training

    workdir = tmp_path_factory.mktemp("german")
    settings = load_config(None, {**SMALL_RUN, "workdir": str(workdir)}).resolved()
    summary = run_training(settings, emit=lambda _: None)
    return settings, summary, Path(summary["model_card_html"]).parents[1]


def test_pipeline_trains_on_the_spec_feature_service(
    german_run: tuple[Settings, dict[str, Any], Path],
) -> None:
    from feast_repo.store import open_store

    settings, _, run_root = german_run
    manifest = load_bundle(run_root / "train-model" / "model").manifest
    assert manifest.feature_service == "german_credit_v1"
    assert manifest.target == "creditability"
    assert set(manifest.protected) == {"sex", "age_band"}
    assert not {"sex", "age_band", "personal_status_and_sex", "age_in_years"} & set(manifest.features)
    assert "housing__for_free" in manifest.features and "duration_in_month" in manifest.features
    assert manifest.directions["duration_in_month"] == 1

    service = open_store(config=settings.feast).get_feature_service("german_credit_v1")
    served = [f.name for projection in service.feature_view_projections for f in projection.features]
    assert served == manifest.features  # the model's inputs are exactly what the service serves, in order

    test = pd.read_parquet(run_root / "build-training-set" / "test")
    assert list(test.columns) == ["applicant_id", "event_timestamp", "creditability", "sex", "age_band"] + (
        manifest.features
    )
    assert set(test["creditability"]) == {0, 1}


def test_default_gates_refuse_german_credit_on_its_cross_validated_auc(
    german_run: tuple[Settings, dict[str, Any], Path],
) -> None:
    _, summary, _ = german_run
    failed = [g["name"] for g in summary["gates"] if not g["passed"]]
    assert summary["registered_version"] is None and not summary["gates_passed"]
    assert "auc" in failed and "auc" in summary["gate_summary"]
    auc = next(g for g in summary["gates"] if g["name"] == "auc")
    assert auc["value"] == pytest.approx(summary["metrics"]["cv_auc_mean"], abs=1e-9)  # judged on CV
    assert 0.6 < summary["metrics"]["cv_auc_mean"] < 0.8
    assert summary["metrics"]["n_trees"] >= 50
    # the tuned model and both baselines are on the record side by side
    assert list(summary["comparison"]) == ["tuned_xgboost", "logistic_regression", "xgboost_default"]


def _register_under(
    german_run: tuple[Settings, dict[str, Any], Path], tmp_path: Path, **gates: float
) -> tuple[Any, Any]:
    settings, summary, _ = german_run
    return regate_and_register(settings, summary, tmp_path, **gates)


def test_auc_gate_refuses_and_is_named(
    german_run: tuple[Settings, dict[str, Any], Path], tmp_path: Path
) -> None:
    report, result = _register_under(german_run, tmp_path, min_auc=0.95)
    assert not report.passed and result.registered_version is None
    assert "auc" in result.gate_summary and "0.95" in result.gate_summary


def test_lenient_gates_register_the_same_model(
    german_run: tuple[Settings, dict[str, Any], Path], tmp_path: Path
) -> None:
    settings = german_run[0]
    # 100 test rows: one false positive moves the FPR by ~0.014 and perturbation noise is large relative to
    # the few rows, so the lenient config widens those two as well as the AUC.
    report, result = _register_under(
        german_run,
        tmp_path,
        min_auc=0.7,
        max_fpr=0.15,
        max_perturbation_shift=0.05,
        baseline_tolerance=0.05,
        min_recall=0.0,
    )
    assert report.passed, report.summary()
    assert result.registered_version is not None
    client = MlflowClient(tracking_uri=tracking_uri_for(settings.mlflow.tracking_uri))
    version = client.get_model_version(settings.mlflow.model_name, result.registered_version)
    assert "german_credit_v1" in version.tags["lineage"]


def test_the_spec_model_is_served_by_id_and_by_values(
    german_run: tuple[Settings, dict[str, Any], Path],
) -> None:
    import httpx

    from creditops.serve_local import running_predictor

    settings, _, run_root = german_run
    bundle_dir = run_root / "train-model" / "model"
    manifest = load_bundle(bundle_dir).manifest
    test = pd.read_parquet(run_root / "build-training-set" / "test").head(5)
    ids = [{"applicant_id": int(i)} for i in test["applicant_id"]]
    contract = load_bundle(bundle_dir).contract
    raw = test[manifest.features].astype(float)
    for field, mapping in contract.encodings.items():  # raw categorical values, as a user has them
        columns = list(mapping.values())
        held = raw[columns].to_numpy().argmax(axis=1)
        raw = raw.drop(columns=columns).assign(**{field: [list(mapping)[k] for k in held]})
    values = raw.to_dict(orient="records")
    with running_predictor(settings, str(bundle_dir)) as base:
        url = f"{base}/v1/models/{settings.serving.model_name}:predict"
        by_id = httpx.post(url, json={"instances": ids}, timeout=30)
        by_values = httpx.post(url, json={"instances": values}, timeout=30)
        missing = httpx.post(
            url, json={"instances": [{k: v for k, v in values[0].items() if k != "duration_in_month"}]}
        )
    assert by_id.status_code == 200, by_id.text
    assert by_values.status_code == 200, by_values.text
    got_id, got_values = by_id.json()["predictions"], by_values.json()["predictions"]
    # one row per German Credit applicant: the online store holds exactly the training row's values
    assert [p["pd"] for p in got_id] == pytest.approx([p["pd"] for p in got_values])
    assert all(p["decision"] in {"approve", "review", "decline"} and p["reasons"] for p in got_id)
    assert missing.status_code == 400 and "duration_in_month" in missing.text
