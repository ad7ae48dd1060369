"""``creditops score`` audits (and anchors) every decision; only a --what-if run is unaudited, saying so."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from creditops import cli
from creditops.governance.audit import AuditLog
from predictor.testing import random_features, tiny_bundle


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    bundle = tiny_bundle(tmp_path / "bundle", n_rows=300, n_trees=3)
    data = tmp_path / "apps.csv"
    random_features(40, seed=4).to_csv(data, index=False)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"workdir": str(tmp_path / "wd")}))
    return bundle, data, config


def _score(setup, *extra: str) -> int:
    bundle, data, config = setup
    out = data.parent / "out.parquet"
    return cli.main(["--config", str(config), "score", "--input", str(data), "--output", str(out),
                     "--model", str(bundle), *extra])  # fmt: skip


def test_every_batch_decision_is_audited_and_anchored(setup, capsys) -> None:
    assert _score(setup) == 0
    wd = setup[2].parent / "wd"
    log = AuditLog.open(f"sqlite:///{wd}/audit.db", create=False)
    report = log.verify(anchor_path=wd / "audit.anchor")
    assert log.count() == 40 and report.ok and report.n_anchored == 1
    assert "audited 40" in capsys.readouterr().out


def test_no_opt_out_only_what_if(setup, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        _score(setup, "--no-audit")
    assert exc.value.code == 2
    assert _score(setup, "--what-if") == 0
    out = capsys.readouterr().out
    assert "what-if run: NOT audited" in out and "not audited (what-if)" in out
    assert not (setup[2].parent / "wd" / "audit.db").exists()
