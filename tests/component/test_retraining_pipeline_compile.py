"""The retraining pipeline's compiled YAML is checked in; its parameters are typed, ingest is never cached."""

from pathlib import Path

import yaml

from components import BASE_IMAGE
from pipelines.retraining import COMPILED, compile_pipeline
from pipelines.training import COMPILED as TRAINING

NEW_STEPS = {"select-recent-window", "compare-with-champion", "record-retraining"}


def _strip_volatile(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if "sdkVersion" not in line)


def test_retraining_yaml_is_up_to_date(tmp_path: Path) -> None:
    fresh = compile_pipeline(tmp_path / "retraining.yaml")
    assert _strip_volatile(fresh.read_text()) == _strip_volatile(COMPILED.read_text()), (
        "pipelines/retraining.yaml is stale: run `creditops compile` and commit it"
    )


def test_it_is_the_training_steps_plus_the_new_ones() -> None:
    spec = yaml.safe_load(COMPILED.read_text())
    training = set(yaml.safe_load(TRAINING.read_text())["root"]["dag"]["tasks"])
    assert set(spec["root"]["dag"]["tasks"]) == training | NEW_STEPS
    assert {ex["container"]["image"] for ex in spec["deploymentSpec"]["executors"].values()} == {BASE_IMAGE}
    assert "pip install" not in COMPILED.read_text()
    tasks = spec["root"]["dag"]["tasks"]
    # the model card and the registry see the report with the champion gate, not the training gates alone
    for step in ("write-model-card", "register-model"):
        report = tasks[step]["inputs"]["artifacts"]["gate_report"]["taskOutputArtifact"]
        assert report == {"outputArtifactKey": "report", "producerTask": "compare-with-champion"}
    trained_on = tasks["build-training-set"]["inputs"]["artifacts"]["entities"]["taskOutputArtifact"]
    assert trained_on["producerTask"] == "select-recent-window"


def test_parameters_caching_and_resources() -> None:
    spec = yaml.safe_load(COMPILED.read_text())
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert all(p.get("isOptional") and "defaultValue" in p for p in params.values())
    assert params["window_months"] == {
        "defaultValue": 12.0,
        "isOptional": True,
        "parameterType": "NUMBER_INTEGER",
    }
    assert params["reason"]["parameterType"] == "STRING"
    tasks = spec["root"]["dag"]["tasks"]
    cached = {n for n, t in tasks.items() if t.get("cachingOptions", {}).get("enableCache", False)}
    assert not cached & {"ingest-data", "compare-with-champion", "register-model", "record-retraining"}
    assert "tune-model" in cached  # what only depends on its inputs may still be cached
    executors = spec["deploymentSpec"]["executors"]
    tune = executors[tasks["tune-model"]["componentRef"]["name"].replace("comp-", "exec-")]
    assert tune["container"]["resources"]["resourceCpuRequest"] == "2"
    resources = [ex["container"].get("resources", {}) for ex in executors.values()]
    assert all(r.get("resourceCpuRequest") and r.get("resourceMemoryRequest") for r in resources)
