"""Register the creditops pipelines' recurring runs on Kubeflow Pipelines (run by Job creditops-kfp-schedule).

Pipelines: ``training`` (``pipelines/training.yaml``) and ``daily`` (``pipelines/daily.yaml``: ingest ->
validate -> features -> store -> monitoring check -> retraining decision), both compiled and checked in.
The run config is the environment's ``settings.yaml`` (expanded and validated by
``creditops.config.load_config``), passed to every step as JSON. Idempotent: a recurring run with the
same name is replaced.

Usage: ``python schedule.py --runs recurring-runs.yaml --settings settings.yaml --host http://ml-pipeline:8888``
(``--dry-run`` prints the requests instead of sending them).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator


class RecurringRun(BaseModel):
    """One recurring run: which pipeline, when (KFP six-field cron, UTC), and its concurrency policy."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    pipeline: str = Field(pattern=r"^(daily|training)$")
    cron: str
    max_concurrency: int = Field(1, ge=1, le=10)
    no_catchup: bool = True

    @field_validator("cron")
    @classmethod
    def _six_fields(cls, value: str) -> str:
        if len(value.split()) != 6:
            raise ValueError("KFP cron needs six fields (seconds minutes hours day month weekday)")
        return value


class Schedule(BaseModel):
    """The file recurring-runs.yaml."""

    model_config = ConfigDict(extra="forbid")
    experiment: str
    runs: list[RecurringRun] = Field(min_length=1)


def load_schedule(path: Path) -> Schedule:
    """Parse and validate recurring-runs.yaml (unknown keys rejected)."""
    return Schedule.model_validate(yaml.safe_load(path.read_text()))


def package_path(pipeline: str) -> Path:
    """The compiled KFP package of ``pipeline`` (checked-in YAML shipped in the pipeline image)."""
    if pipeline == "training":
        from pipelines.training import COMPILED
    else:
        from pipelines.daily import COMPILED
    return COMPILED


def recurring_run_request(
    run: RecurringRun, experiment_id: str, package: Path, config_json: str
) -> dict[str, Any]:
    """Keyword arguments of ``kfp.Client.create_recurring_run`` for one run."""
    return {
        "experiment_id": experiment_id,
        "job_name": run.name,
        "cron_expression": run.cron,
        "max_concurrency": run.max_concurrency,
        "no_catchup": run.no_catchup,
        "pipeline_package_path": str(package),
        "params": {"config": config_json},
        "enabled": True,
    }


def main(argv: list[str] | None = None) -> int:
    """Register (or replace) every recurring run of the schedule file."""
    from creditops.config import load_config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--settings", type=Path, required=True)
    p.add_argument("--host", default="http://ml-pipeline.kubeflow:8888")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    schedule = load_schedule(args.runs)
    config_json = load_config(args.settings).model_dump_json()
    packages = {run.pipeline: package_path(run.pipeline) for run in schedule.runs}
    if args.dry_run:
        for run in schedule.runs:
            print(json.dumps(recurring_run_request(run, "<experiment>", packages[run.pipeline], "<config>")))
        return 0
    import kfp

    client = kfp.Client(host=args.host)
    experiment = client.create_experiment(name=schedule.experiment)
    existing = client.list_recurring_runs(experiment_id=experiment.experiment_id, page_size=200)
    by_name = {r.display_name: r.recurring_run_id for r in (existing.recurring_runs or [])}
    for run in schedule.runs:
        if run.name in by_name:
            client.delete_recurring_run(by_name[run.name])
        request = recurring_run_request(run, experiment.experiment_id, packages[run.pipeline], config_json)
        created = client.create_recurring_run(**request)
        print(f"{run.name}: {created.recurring_run_id} cron={run.cron}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
