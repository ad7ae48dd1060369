"""The daily data pipeline: ingest -> validate -> features -> store -> monitoring -> retraining decision.

Wiring only. Compile: ``python -m pipelines.daily`` (writes ``pipelines/daily.yaml``, checked in; a test
recompiles and diffs). Run locally: :func:`run_daily` (KFP local SubprocessRunner), which calls a hook
when the decision is to retrain. Every step sees new data, so none is cached.
"""

import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfp import compiler, dsl

from components.daily import (
    build_daily_features,
    check_monitoring,
    decide_retraining,
    resolve_settings,
    store_features,
)
from components.ingest import ingest_data
from components.validate import validate_data

COMPILED = Path(__file__).with_name("daily.yaml")


@dsl.pipeline(name="creditops-daily", description="Ingest, validate, featurise, store, monitor, decide.")
def daily_pipeline(
    config: str = "",
    workdir: str = "",
    source: str = "synthetic",
    n_applicants: int = 20_000,
    seed: int = 7,
    seed_stream_state: bool = False,
    reference_path: str = "",
    window_days: int = 30,
    alpha: float = 0.05,
    max_drifted_share: float = 0.2,
    max_psi: float = 0.25,
    min_current_rows: int = 100,
) -> bool:
    """Wire the steps; returns whether the retraining policy asks for a new model."""
    settings = resolve_settings(
        config=config, workdir=workdir, source=source, n_applicants=n_applicants, seed=seed
    )
    ingest = ingest_data(config=settings.output)
    validate = validate_data(config=settings.output, snapshot=ingest.outputs["snapshot"])
    features = build_daily_features(validated=validate.outputs["validated"])
    store = store_features(
        config=settings.output,
        validated=validate.outputs["validated"],
        features=features.outputs["features"],
        seed_stream_state=seed_stream_state,
    )
    monitor = check_monitoring(
        features=features.outputs["features"],
        reference_path=reference_path,
        window_days=window_days,
        alpha=alpha,
    ).after(store)
    decide = decide_retraining(
        monitoring=monitor.outputs["monitoring"],
        max_drifted_share=max_drifted_share,
        max_psi=max_psi,
        min_current_rows=min_current_rows,
    )
    for task in (settings, ingest, validate, features, store, monitor, decide):
        task.set_caching_options(False)
    return decide.outputs["Output"]


def compile_pipeline(path: Path = COMPILED) -> Path:
    """Compile to KFP IR YAML for a cluster."""
    compiler.Compiler().compile(daily_pipeline, str(path))
    return path


def run_daily(
    settings: Any,
    on_retrain: Callable[[dict[str, Any]], object] | None = None,
    emit: Callable[[str], None] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Run the daily pipeline on this machine; call ``on_retrain(decision)`` when it asks for retraining.

    Args:
        settings: resolved ``Settings``; written to ``<workdir>/kfp/daily-config.yaml`` for the run.
        on_retrain: the retraining hook (``creditops schedule`` runs the training pipeline).
        emit: one-line-per-step progress (default: stdout).
        **params: pipeline parameters overriding the defaults (``n_applicants``, ``max_psi``...).

    Returns:
        ``{"retrain": bool, "reasons": [...], "log": path}``.
    """
    import yaml
    from kfp import local

    from pipelines.local import PipelineFailed, StepProgress

    console = sys.stdout
    emit = emit or (lambda line: print(line, file=console, flush=True))
    root = settings.workdir / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / "daily-config.yaml"
    config_path.write_text(yaml.safe_dump(json.loads(settings.model_dump_json())))
    log_path = root / f"daily-{time.strftime('%Y%m%d-%H%M%S')}.log"
    params = {"n_applicants": settings.data.n_applicants, "seed": settings.data.seed, **params}
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    with open(log_path, "w") as log, contextlib.redirect_stdout(StepProgress(log, emit)):
        try:
            task = daily_pipeline(config=str(config_path), source=settings.data.source, **params)
        except RuntimeError as exc:
            last = "\n".join(log_path.read_text().splitlines()[-30:])
            raise PipelineFailed(f"{exc}\n--- last lines of {log_path} ---\n{last}") from exc
    decision = _decision(log_path.parent)
    decision["log"] = str(log_path)
    if task.output and on_retrain is not None:
        on_retrain(decision)
    return decision


def _decision(root: Path) -> dict[str, Any]:
    """The newest ``decision`` artifact under the local pipeline root."""
    newest = max(root.glob("creditops-daily-*/decide-retraining/decision"), key=lambda p: p.stat().st_mtime)
    return json.loads(newest.read_text())


if __name__ == "__main__":
    print(compile_pipeline())
