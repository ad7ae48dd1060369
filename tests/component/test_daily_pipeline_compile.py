"""The daily pipeline's compiled YAML is checked in; its steps are uncached and its parameters typed."""

from pathlib import Path

import yaml
from kfp import compiler, dsl

from components import BASE_IMAGE
from pipelines.daily import COMPILED, compile_pipeline

STEPS = {
    "resolve-settings",
    "ingest-data",
    "validate-data",
    "build-daily-features",
    "store-features",
    "check-monitoring",
    "decide-retraining",
}


def _strip_volatile(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if "sdkVersion" not in line)


def _cached_tasks(spec: dict) -> list[str]:
    tasks = spec["root"]["dag"]["tasks"]
    return sorted(n for n, t in tasks.items() if t.get("cachingOptions", {}).get("enableCache", False))


def test_daily_yaml_is_up_to_date(tmp_path: Path) -> None:
    fresh = compile_pipeline(tmp_path / "daily.yaml")
    assert _strip_volatile(fresh.read_text()) == _strip_volatile(COMPILED.read_text()), (
        "pipelines/daily.yaml is stale: run `python -m pipelines.daily` and commit it"
    )


def test_steps_image_and_no_caching() -> None:
    spec = yaml.safe_load(COMPILED.read_text())
    assert set(spec["root"]["dag"]["tasks"]) == STEPS
    assert {ex["container"]["image"] for ex in spec["deploymentSpec"]["executors"].values()} == {BASE_IMAGE}
    assert _cached_tasks(spec) == []
    assert "pip install" not in COMPILED.read_text()


def test_the_caching_check_catches_a_cached_step(tmp_path: Path) -> None:
    @dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
    def echo(x: int) -> int:
        return x

    @dsl.pipeline(name="cached")
    def cached(x: int = 1) -> int:
        return echo(x=x).output  # KFP caches by default

    compiler.Compiler().compile(cached, str(tmp_path / "cached.yaml"))
    assert _cached_tasks(yaml.safe_load((tmp_path / "cached.yaml").read_text())) == ["echo"]


def test_parameters_are_typed_with_defaults() -> None:
    params = yaml.safe_load(COMPILED.read_text())["root"]["inputDefinitions"]["parameters"]
    assert all("defaultValue" in p for p in params.values()), "every parameter has a default"
    assert params["n_applicants"] == {
        "defaultValue": 20000.0,
        "isOptional": True,
        "parameterType": "NUMBER_INTEGER",
    }
    assert params["seed_stream_state"]["parameterType"] == "BOOLEAN"
    assert params["max_psi"]["parameterType"] == "NUMBER_DOUBLE"
    assert params["source"]["defaultValue"] == "synthetic"
