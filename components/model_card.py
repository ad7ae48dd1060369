"""Step 8: the model card (Markdown + HTML with plots) for this model version."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Model, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def write_model_card(
    config: str,
    model: Input[Model],
    test: Input[Dataset],
    gate_report: Input[Artifact],
    evidence: Input[Artifact],
    card_markdown: Output[Markdown],
    card_html: Output[HTML],
):
    """Render overview, data, performance beside the baselines, fairness, limitations, ethics, model risk."""
    import json
    from pathlib import Path

    import pandas as pd

    from creditops.artifact import load_bundle
    from creditops.config import Settings
    from creditops.data.ingest import describe_source
    from creditops.governance.gates import GateReport
    from creditops.governance.model_card import render
    from creditops.training.workflow import comparison, read_evidence

    bundle = load_bundle(model.path)
    report = GateReport.from_dict(json.loads(Path(gate_report.path).read_text()))
    settings = Settings.model_validate_json(config)
    dataset = describe_source(settings.data.source, settings.data.spec_path)
    compared = comparison(read_evidence(evidence.path))
    markdown, html = render(
        bundle,
        report,
        report.fairness_frames,
        pd.read_parquet(test.path),
        dataset=dataset,
        baselines=compared,
    )
    Path(card_markdown.path).write_text(markdown)
    Path(card_html.path).write_text(html)
