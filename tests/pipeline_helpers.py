"""Re-judge a pipeline run's model under other gates and register it (or not) as the pipeline would.

Importable from any test module (``tests/`` is on sys.path through its conftest).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from creditops.artifact import load_bundle
from creditops.config import Settings
from creditops.governance.gates import GateEvidence, GateReport, evaluate_gates
from creditops.training.workflow import RunSummary, read_evidence, register_if_passed


def regate_and_register(
    settings: Settings, summary: dict[str, Any], tmp_path: Path, **gates: float
) -> tuple[GateReport, RunSummary]:
    """Evaluate the run's bundle on its test split under ``settings.gates`` with ``gates`` overridden."""
    run_root = Path(summary["model_card_html"]).parents[1]
    bundle_dir = run_root / "train-model" / "model"
    test = pd.read_parquet(run_root / "build-training-set" / "test")
    evidence_path = run_root / "train-model" / "evidence"
    evidence = GateEvidence.from_dict(read_evidence(evidence_path))  # what the gate step judged with
    report = evaluate_gates(
        load_bundle(bundle_dir), test, settings.gates.model_copy(update=gates), evidence=evidence
    )
    report_path = tmp_path / "gates.json"
    report_path.write_text(json.dumps(report.to_dict()))
    result = register_if_passed(
        settings,
        summary["run_id"],
        bundle_dir,
        report_path,
        {"markdown": summary["model_card_markdown"], "html": summary["model_card_html"]},
        evidence_path=evidence_path,
    )
    return report, result
