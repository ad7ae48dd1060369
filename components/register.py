"""Step 9: register a passing model in MLflow with alias ``challenger``; a failing one is refused."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Model

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def register_model(
    config: str,
    run_id: str,
    model: Input[Model],
    gate_report: Input[Artifact],
    card_markdown: Input[Markdown],
    card_html: Input[HTML],
    entities: Input[Dataset],
    evidence: Input[Artifact],
) -> str:
    """Register the bundle (with card, gates and lineage) if every gate passed.

    Returns:
        JSON run summary: data version, metrics, gates, registered version (empty when refused), card paths.
    """
    from creditops.config import Settings
    from creditops.training.workflow import register_if_passed

    settings = Settings.model_validate_json(config)
    summary = register_if_passed(
        settings,
        run_id=run_id,
        bundle_dir=model.path,
        gate_report_path=gate_report.path,
        card_paths={"markdown": card_markdown.path, "html": card_html.path},
        entities_path=entities.path,
        evidence_path=evidence.path,
    )
    return summary.model_dump_json()
