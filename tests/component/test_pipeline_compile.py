"""The compiled pipeline YAML is a checked artefact: recompiling must reproduce it exactly."""

from pathlib import Path

import yaml
from kfp import components

from components import BASE_IMAGE
from pipelines.training import COMPILED, compile_pipeline


def _strip_volatile(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if "sdkVersion" not in line)


def test_training_yaml_is_up_to_date(tmp_path: Path) -> None:
    fresh = compile_pipeline(tmp_path / "training.yaml")
    assert _strip_volatile(fresh.read_text()) == _strip_volatile(COMPILED.read_text()), (
        "pipelines/training.yaml is stale: run `python -m pipelines.training` and commit it"
    )


def test_compiled_yaml_loads_back_and_uses_the_project_image() -> None:
    loaded = components.load_component_from_file(str(COMPILED))
    assert loaded.name == "creditops-training"
    spec = yaml.safe_load(COMPILED.read_text())
    images = {ex["container"]["image"] for ex in spec["deploymentSpec"]["executors"].values()}
    assert images == {BASE_IMAGE}
    steps = set(spec["root"]["dag"]["tasks"])
    assert {
        "resolve-run-settings",
        "ingest-data",
        "validate-data",
        "compute-features",
        "build-training-set",
        "tune-model",
        "train-model",
        "evaluate-gates",
        "write-model-card",
        "register-model",
    } == steps
    # offline clusters: the compiled steps never pip-install at run time
    assert "pip install" not in COMPILED.read_text()


def test_parameters_are_typed_with_defaults_and_steps_request_resources() -> None:
    spec = yaml.safe_load(COMPILED.read_text())
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert all(p.get("isOptional") and "defaultValue" in p for p in params.values()), "no required blob"
    assert params["n_trials"] == {
        "defaultValue": 100.0,
        "isOptional": True,
        "parameterType": "NUMBER_INTEGER",
    }
    assert params["source"]["defaultValue"] == "synthetic" and params["config"]["defaultValue"] == ""
    tasks = spec["root"]["dag"]["tasks"]
    assert not tasks["ingest-data"].get("cachingOptions", {}).get("enableCache", False)
    resources = [ex["container"].get("resources", {}) for ex in spec["deploymentSpec"]["executors"].values()]
    assert all(r.get("resourceCpuRequest") and r.get("resourceMemoryRequest") for r in resources)
