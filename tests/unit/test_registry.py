from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from governance_helpers import PROTECTED, TARGET, make_bundle
from mlflow import MlflowClient

from creditops.artifact import BUNDLE_FILES, REGISTRATION_FILE, load_bundle
from creditops.config import GatesConfig, MlflowConfig
from creditops.errors import BundleError, GateFailure
from creditops.governance import model_card, registry
from creditops.governance.gates import Gate, GateReport, evaluate_gates
from creditops.serving import model_version_of


def _digest(directory: Path) -> dict[str, str]:
    """Hashes of the bundle's own files (the registered copy adds MLflow's MLmodel + requirements.txt)."""
    return {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in BUNDLE_FILES}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = Path(tmp_path_factory.mktemp("registry"))
    bundle_dir, test = make_bundle(root / "bundle")
    bundle = load_bundle(bundle_dir)
    report = evaluate_gates(bundle, test, GatesConfig(), TARGET, PROTECTED)
    assert report.passed, report.summary()
    markdown, html = model_card.render(bundle, report, test_df=test.head(200))
    card_paths = model_card.write(root / "card", markdown, html)
    return {
        "root": root,
        "uri": f"sqlite:///{root / 'mlflow.db'}",
        "bundle_dir": bundle_dir,
        "test": test,
        "report": report,
        "cards": card_paths,
    }


def test_failed_gates_are_refused_and_nothing_is_registered(setup: dict) -> None:
    failing = GateReport(passed=False, gates=[Gate.check("auc", 0.61, 0.8, ">=")], metrics={"auc": 0.61})
    with pytest.raises(GateFailure, match=r"auc: 0.61 \(required >= 0.8\) FAILED by 0.19"):
        registry.register(setup["bundle_dir"], failing, setup["uri"], "refused-model")
    client = MlflowClient(tracking_uri=setup["uri"], registry_uri=setup["uri"])
    assert client.search_registered_models(filter_string="name='refused-model'") == []


def test_lifecycle_challenger_then_explicit_promotion(setup: dict, tmp_path: Path) -> None:
    uri, name = setup["uri"], MlflowConfig().model_name
    v1 = registry.register(
        setup["bundle_dir"],
        setup["report"],
        uri,
        name,
        lineage={"snapshot": "abc"},
        model_card_paths=setup["cards"],
    )
    assert v1 == "1"
    assert registry.alias_version(uri, name, registry.CHALLENGER) == "1"
    assert registry.alias_version(uri, name, registry.CHAMPION) is None

    # the registered bundle comes back as the very same directory
    local = registry.resolve(uri, f"models:/{name}@challenger", dst_path=tmp_path / "dl1")
    assert _digest(local) == _digest(setup["bundle_dir"])
    X = setup["test"][load_bundle(local).features]
    np.testing.assert_array_equal(
        load_bundle(local).predict_pd(X), load_bundle(setup["bundle_dir"]).predict_pd(X)
    )

    v2 = registry.register(setup["bundle_dir"], setup["report"], uri, name)
    assert v2 == "2"
    assert registry.alias_version(uri, name, registry.CHALLENGER) == "2"
    assert registry.alias_version(uri, name, registry.CHAMPION) is None  # registering never moves champion
    assert registry.resolve_version(uri, f"models:/{name}@challenger") == "2"
    assert registry.resolve_version(uri, f"{name}/1") == "1"
    assert registry.resolve_version(uri, str(setup["bundle_dir"])) is None

    assert registry.promote(uri, name, v1, promoted_by="alice", reason="canary ok") is None
    assert registry.alias_version(uri, name, registry.CHAMPION) == "1"
    assert registry.promote(uri, name, v2, promoted_by="bob") == "1"
    assert registry.alias_version(uri, name, registry.CHAMPION) == "2"
    assert registry.alias_version(uri, name, registry.CHALLENGER) == "2"

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    tags = client.get_model_version(name, v2).tags
    assert tags["champion.promoted_by"] == "bob"
    assert tags["champion.previous"] == "1"
    assert tags["champion.promoted_at"]
    assert client.get_model_version(name, v1).tags["champion.reason"] == "canary ok"

    for ref in (f"{name}@champion", f"models:/{name}/1", f"{name}/2"):
        assert (
            registry.resolve(uri, ref, dst_path=tmp_path / ref.replace("/", "_")) / "manifest.json"
        ).is_file()


def test_a_registered_bundle_names_its_version_without_the_registry(setup: dict, tmp_path: Path) -> None:
    """A KServe storageUri holds the bundle's files only: they still label decisions ``<name>@<version>``."""
    uri, name = setup["uri"], "labelled-model"
    assert model_version_of(load_bundle(setup["bundle_dir"])).split("@")[1] != "1"  # not registered yet
    versions = [registry.register(setup["bundle_dir"], setup["report"], uri, name) for _ in range(2)]
    model_name = load_bundle(setup["bundle_dir"]).manifest.model_name
    for version in versions:
        fetched = registry.resolve(uri, f"models:/{name}/{version}", dst_path=tmp_path / f"v{version}")
        copied = shutil.copytree(fetched, tmp_path / f"storage-uri-{version}")  # as a storage initializer
        assert model_version_of(load_bundle(copied)) == f"{model_name}@{version}"
    # registering a registered bundle again: the copy's old record is not carried over
    again = registry.register(copied, setup["report"], uri, name)
    fetched = registry.resolve(uri, f"models:/{name}/{again}", dst_path=tmp_path / "again")
    assert load_bundle(fetched).version == again == "3"
    (copied / REGISTRATION_FILE).write_text('{"version": "latest"}')
    with pytest.raises(BundleError, match="version must be a number"):
        load_bundle(copied)


def test_run_holds_bundle_card_gates_metrics_and_lineage(setup: dict) -> None:
    uri = setup["uri"]
    version = registry.register(
        setup["bundle_dir"],
        setup["report"],
        uri,
        "lineage-model",
        lineage={"snapshot_dir": "/data/snap", "pipeline_run": "kfp-1"},
        model_card_paths=setup["cards"],
    )
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = client.get_model_version("lineage-model", version)
    run = client.get_run(mv.run_id)
    assert run.data.metrics["test.auc"] == pytest.approx(setup["report"].metrics["auc"])
    assert run.data.tags["gate.auc"] == "pass"
    assert run.data.tags["lineage.data_version"] == "testdata0001"
    assert run.data.tags["lineage.feature_service"] == "credit_scoring_v1"
    assert run.data.tags["lineage.pipeline_run"] == "kfp-1"
    assert run.data.tags["lineage.model"] == f"lineage-model/{version}"
    assert mv.tags["lineage"] == (
        f"data_version:testdata0001 -> feature_service:credit_scoring_v1 -> run_id:{mv.run_id} "
        f"-> model:lineage-model/{version}"
    )
    assert mv.tags["gates_passed"] == "true"
    paths = {a.path for a in client.list_artifacts(mv.run_id)}
    assert {"bundle", "model_card", "gates"} <= paths
    cards = {a.path for a in client.list_artifacts(mv.run_id, "model_card")}
    assert cards == {"model_card/model_card.md", "model_card/model_card.html"}
    bundle_files = {a.path for a in client.list_artifacts(mv.run_id, "bundle")}
    assert bundle_files == {
        "bundle/model.ubj",
        "bundle/manifest.json",
        "bundle/reference.parquet",
        "bundle/MLmodel",
        "bundle/requirements.txt",
        "bundle/registration.json",
    }
    # artifacts sit next to the SQLite database, not in the working directory
    assert (setup["root"] / "mlartifacts").is_dir()


def test_register_into_an_existing_training_run(setup: dict) -> None:
    uri = setup["uri"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("creditops")
    run_id = client.create_run(exp.experiment_id).info.run_id
    version = registry.register(setup["bundle_dir"], setup["report"], uri, "train-run-model", run_id=run_id)
    assert client.get_model_version("train-run-model", version).run_id == run_id
    assert client.get_run(run_id).data.tags["lineage.run_id"] == run_id


def test_bad_references_and_unguarded_versions(setup: dict, tmp_path: Path) -> None:
    uri = setup["uri"]
    assert registry.resolve(None, setup["bundle_dir"]) == setup["bundle_dir"]
    assert registry.resolve(None, setup["bundle_dir"].parent) == setup["bundle_dir"]  # dir holding bundle/
    with pytest.raises(BundleError, match="not a model bundle"):
        registry.resolve(uri, tmp_path)
    with pytest.raises(BundleError, match="no model version"):
        registry.resolve(uri, "models:/no-such-model@champion")
    with pytest.raises(BundleError, match="neither a bundle directory"):
        registry.resolve(uri, "s3://bucket/some/where")
    with pytest.raises(BundleError, match="no version 99"):
        registry.promote(uri, "credit-pd", 99)
    with pytest.raises(BundleError, match="missing"):
        registry.register(tmp_path, setup["report"], uri, "x")

    # a version created behind the gates' back can never become champion
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("sneaky")
    mv = client.create_model_version("sneaky", source=str(setup["bundle_dir"]))
    with pytest.raises(GateFailure, match="not registered through the gates"):
        registry.promote(uri, "sneaky", mv.version)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://postgres@h:5432/db", "postgresql+psycopg://postgres@h:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("http://mlflow:5000", "http://mlflow:5000"),
    ],
)
def test_tracking_uri_for(given: str, expected: str) -> None:
    assert registry.tracking_uri_for(given) == expected


def test_registered_version_is_an_mlflow_pyfunc_model(
    setup: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.models import Model

    uri, name = setup["uri"], "pyfunc-model"
    registry.register(setup["bundle_dir"], setup["report"], uri, name)
    local = registry.resolve(uri, f"models:/{name}@challenger", dst_path=tmp_path / "dl")
    meta = Model.load(str(local / "MLmodel"))
    assert meta.flavors["python_function"]["loader_module"] == registry.PYFUNC_LOADER_MODULE
    bundle = load_bundle(setup["bundle_dir"])
    assert meta.signature.inputs.input_names() == bundle.features
    assert meta.signature.outputs.input_names() == ["pd", "score", "decision"]

    # MLflow's own loader, by registry alias, the way a user of the MLflow UI would load it
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    model = mlflow.pyfunc.load_model(f"models:/{name}@challenger")
    frame = setup["test"][bundle.features].head(50)
    scored = model.predict(frame)
    np.testing.assert_allclose(scored["pd"].to_numpy(), bundle.predict_pd(frame))
    assert list(scored["decision"]) == list(bundle.decide(bundle.predict_pd(frame)))
    assert set(scored["decision"]) <= {"approve", "review", "decline"}
    # the signature is enforced: a frame without a model input is refused
    with pytest.raises(Exception, match="utilisation"):
        model.predict(frame.drop(columns=["utilisation"]))


def test_card_files_without_a_suffix_are_logged_with_previewable_names(setup: dict, tmp_path: Path) -> None:
    md, html = (Path(p) for p in sorted(map(str, setup["cards"])))  # model_card.html, model_card.md
    bare_md, bare_html = tmp_path / "card_markdown", tmp_path / "card_html"  # as KFP names its outputs
    bare_md.write_text(Path(md if str(md).endswith(".md") else html).read_text())
    bare_html.write_text(Path(html if str(html).endswith(".html") else md).read_text())
    assert registry.card_file_name(bare_md) == "model_card.md"
    assert registry.card_file_name(bare_html) == "model_card.html"
    uri = setup["uri"]
    version = registry.register(
        setup["bundle_dir"], setup["report"], uri, "card-names", model_card_paths=[bare_md, bare_html]
    )
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run_id = client.get_model_version("card-names", version).run_id
    cards = {a.path for a in client.list_artifacts(run_id, "model_card")}
    assert cards == {"model_card/model_card.md", "model_card/model_card.html"}
