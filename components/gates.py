"""Step 7: validation gates (performance, fairness, stability, monotonicity) on the held-out test set."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def evaluate_gates(
    config: str,
    model: Input[Model],
    test: Input[Dataset],
    evidence: Input[Artifact],
    gate_report: Output[Artifact],
    gate_summary: Output[Markdown],
    metrics: Output[Metrics],
) -> NamedTuple("GateOutputs", [("passed", bool), ("summary", str)]):
    """Evaluate every gate; the summary names each failed gate with its measured value and threshold.

    ``evidence`` is the training step's (CV AUCs, raw-score AUC, baselines); gates that need it judge it.
    """
    import json
    from collections import namedtuple
    from pathlib import Path

    import pandas as pd

    from creditops.artifact import load_bundle
    from creditops.config import Settings
    from creditops.governance.gates import GateEvidence
    from creditops.governance.gates import evaluate_gates as run_gates
    from creditops.training.workflow import read_evidence

    settings = Settings.model_validate_json(config)
    bundle = load_bundle(model.path)
    proof = GateEvidence.from_dict(read_evidence(evidence.path))
    report = run_gates(bundle, pd.read_parquet(test.path), settings.gates, evidence=proof)
    Path(gate_report.path).write_text(json.dumps(report.to_dict(), indent=2))
    Path(gate_summary.path).write_text(report.summary())
    for gate in report.gates:
        if gate.value == gate.value:  # NaN (e.g. a metric undefined on this test set) is not a metric
            metrics.log_metric(gate.name, float(gate.value))
    return namedtuple("GateOutputs", ["passed", "summary"])(bool(report.passed), report.summary())
