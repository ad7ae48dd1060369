"""The step chain both model pipelines share, wired once: data -> features, and training set -> registered.

``training`` and ``retraining`` differ only where these helpers take a hook: which entities the training
set is built from (all of them, or the recent window) and what judges the model after the gates (nothing,
or the champion comparison). The compiled YAML of each pipeline is what the helpers wire; the compile tests
diff it against the checked-in files.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from components.features import compute_features
from components.gates import evaluate_gates
from components.ingest import ingest_data
from components.model_card import write_model_card
from components.register import register_model
from components.train import train_model
from components.training_set import build_training_set
from components.tune import tune_model
from components.validate import validate_data


@dataclass
class DataSteps:
    """Ingest -> validate -> features."""

    ingest: Any
    validate: Any
    features: Any

    def tasks(self) -> list[Any]:
        """In wiring order."""
        return [self.ingest, self.validate, self.features]


def wire_data(config: Any) -> DataSteps:
    """Ingest, validate and compute features."""
    ingest = ingest_data(config=config)
    validate = validate_data(config=config, snapshot=ingest.outputs["snapshot"])
    features = compute_features(config=config, validated=validate.outputs["validated"])
    return DataSteps(ingest, validate, features)


@dataclass
class ModelSteps:
    """Training set -> tune -> train -> gates [-> judge] -> model card -> register."""

    training_set: Any
    tune: Any
    train: Any
    gates: Any
    judge: Any
    card: Any
    register: Any

    def tasks(self) -> list[Any]:
        """In wiring order (``judge`` only when there is one)."""
        steps = [self.training_set, self.tune, self.train, self.gates, self.judge, self.card, self.register]
        return [t for t in steps if t is not None]


#: ``(config, model, test, gate_report) -> (task, its gate report output)``: a judge after the gates.
Judge = Callable[[Any, Any, Any, Any], tuple[Any, Any]]


def wire_model(config: Any, entities: Any, judge: Judge | None = None) -> ModelSteps:
    """Build the training set from ``entities``, tune, train, gate, judge, document and register."""
    training_set = build_training_set(config=config, entities=entities)
    split = training_set.outputs
    tune = tune_model(config=config, train=split["train"], valid=split["valid"])
    train = train_model(
        config=config,
        run_id=tune.outputs["run_id"],
        train=split["train"],
        valid=split["valid"],
        test=split["test"],
        best_params=tune.outputs["best_params"],
    )
    model, evidence = train.outputs["model"], train.outputs["evidence"]
    gates = evaluate_gates(config=config, model=model, test=split["test"], evidence=evidence)
    judged, report = None, gates.outputs["gate_report"]
    if judge is not None:
        judged, report = judge(config, model, split["test"], report)
    card = write_model_card(
        config=config, model=model, test=split["test"], gate_report=report, evidence=evidence
    )
    register = register_model(
        config=config,
        run_id=tune.outputs["run_id"],
        model=model,
        gate_report=report,
        card_markdown=card.outputs["card_markdown"],
        card_html=card.outputs["card_html"],
        entities=entities,
        evidence=evidence,
    )
    return ModelSteps(training_set, tune, train, gates, judged, card, register)
