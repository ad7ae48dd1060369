from __future__ import annotations

import base64
import re
from pathlib import Path

import pandas as pd
import pytest
from governance_helpers import PROTECTED, TARGET, make_bundle

from creditops.artifact import Bundle, load_bundle
from creditops.config import GatesConfig
from creditops.governance import model_card
from creditops.governance.gates import GateReport, evaluate_gates

SECTIONS = [
    "Overview",
    "Model risk management",
    "Training data",
    "Performance",
    "Explainability",
    "Fairness",
    "Limitations",
    "Ethical considerations",
]
PLOTS = [
    "ROC",
    "Calibration",
    "Score distribution",
    "Mean |TreeSHAP",
    "TreeSHAP values",
    "XGBoost total gain",
]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, pd.DataFrame, GateReport]:
    # 6000 rows -> a 2000-row test set, the size the card must render quickly
    bundle_dir, test = make_bundle(Path(tmp_path_factory.mktemp("card")) / "bundle", n=6000)
    bundle = load_bundle(bundle_dir)
    return bundle, test, evaluate_gates(bundle, test, GatesConfig(), TARGET, PROTECTED)


def test_card_has_every_section_and_embedded_plots(model: tuple[Bundle, pd.DataFrame, GateReport]) -> None:
    bundle, test, report = model
    assert len(test) == 2000
    markdown, html = model_card.render(bundle, report, test_df=test, model_version="7", owner="Risk team")
    for section in SECTIONS:
        assert f"## {section}" in markdown
        assert f"<h2>{section}</h2>" in html
    assert markdown.startswith("# Model card: credit-pd-test v7")
    assert "Owner: Risk team" in markdown and "Monitoring plan:" in markdown and "Intended use:" in markdown
    assert "PASSED all gates" in markdown
    for attr in PROTECTED:
        assert f"By {attr}:" in markdown
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    alts = [alt for alt, _ in images]
    for plot in PLOTS:
        assert any(plot in alt for alt in alts), plot
    assert any("by group" in alt for alt in alts)
    for _, data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data:image" not in markdown and "![" not in markdown  # Markdown stays readable
    assert "<script" not in html


def test_failing_report_lists_failed_gates_as_limitations(
    model: tuple[Bundle, pd.DataFrame, GateReport],
) -> None:
    bundle, test, _ = model
    report = evaluate_gates(bundle, test, GatesConfig(min_auc=0.99), TARGET, PROTECTED)
    markdown, html = model_card.render(bundle, report, test_df=test.head(300))
    assert "FAILED 1 of" in markdown
    assert "Failed gate: auc:" in markdown
    assert "FAIL (by" in html


def test_image_dir_links_plots_from_markdown(
    model: tuple[Bundle, pd.DataFrame, GateReport], tmp_path: Path
) -> None:
    bundle, test, report = model
    markdown, html = model_card.render(bundle, report, test_df=test.head(300), image_dir=tmp_path / "images")
    paths = model_card.write(tmp_path, markdown, html)
    assert [p.name for p in paths] == ["model_card.md", "model_card.html"]
    links = re.findall(r"!\[[^\]]*\]\((images/[a-z_]+\.png)\)", markdown)
    assert "images/roc.png" in links and "images/fairness.png" in links
    for link in links:
        assert (tmp_path / link).read_bytes()[:4] == b"\x89PNG"


def test_card_without_test_frame_uses_reference_sample(
    model: tuple[Bundle, pd.DataFrame, GateReport],
) -> None:
    bundle, _, report = model
    markdown, html = model_card.render(bundle, report)
    assert "## Explainability" in markdown
    assert "ROC curve" not in html  # no outcomes in the reference sample, so no ROC
    assert "TreeSHAP values per applicant" in html
