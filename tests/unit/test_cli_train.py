"""``creditops train`` / ``ingest`` through the real CLI with stdout piped: a work directory option, one-line
refusals before any pipeline step, and a summary that is readable in a pipe (full paths, no escape codes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from creditops.cli import _settings, build_parser

# a folder name long enough that any 80-column wrapping or truncation would show
LONG = "a_rather_long_folder_name_so_that_paths_exceed_eighty_columns_when_printed_in_full"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS", "TTY_COMPATIBLE")}
    return subprocess.run(
        [sys.executable, "-m", "creditops.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,  # stdout is a pipe, not a terminal
        text=True,
        timeout=120,
    )


def write_dataset(folder: Path, positive: str, protected: str = "[sex]") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n = 300
    pd.DataFrame(
        {
            "loan_id": np.arange(n),
            "income": rng.normal(50_000, 10_000, n).round(),
            "sex": rng.choice(["f", "m"], n),
            "status": rng.choice(["bad", "good"], n, p=[0.3, 0.7]),
        }
    ).to_csv(folder / "loans.csv", index=False)
    spec = folder / "loans.yaml"
    spec.write_text(
        f"name: loans\npath: loans.csv\nid_column: loan_id\ntarget: status\npositive_value: {positive}\n"
        f"protected: {protected}\nfeatures: [{{name: income, type: numeric, direction: -1}}]\n"
    )
    return spec


def test_train_refuses_a_bad_spec_in_one_piped_line_before_any_step(tmp_path: Path) -> None:
    spec = write_dataset(tmp_path / LONG, positive="Bad")
    workdir = tmp_path / LONG / "work"
    proc = run_cli("train", "--source", "spec", "--spec", str(spec), "--workdir", str(workdir), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    counts = pd.read_csv(spec.parent / "loans.csv")["status"].value_counts()
    assert proc.stdout == (
        f"error: {spec}: positive_value 'Bad' never occurs in target 'status', which holds "
        f"'good' ({counts['good']}), 'bad' ({counts['bad']}); "
        "values are case-sensitive: positive_value: bad\n"
    )
    assert "\x1b" not in proc.stdout and "Traceback" not in proc.stderr
    assert not (workdir / "kfp").exists()  # no pipeline step ran


def test_ingest_uses_the_work_directory_and_prints_full_paths_and_warnings(tmp_path: Path) -> None:
    spec = write_dataset(tmp_path / LONG, positive="bad", protected="[]")
    workdir = tmp_path / LONG / "work"
    proc = run_cli("ingest", "--source", "spec", "--spec", str(spec), "--workdir", str(workdir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (snapshot,) = (workdir / "snapshots").iterdir()
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("warning: dataset spec 'loans': protected: [] declares no protected attribute")
    assert lines[1] == f"snapshot {snapshot.name} at {snapshot}" and lines[2] == "  loans: 300 rows"
    assert "\x1b" not in proc.stdout and len(lines) == 3


def test_work_directory_option_reaches_the_settings(tmp_path: Path) -> None:
    args = build_parser().parse_args(["train", "--workdir", str(tmp_path / "w"), "--source", "hmda"])
    settings = _settings(args)
    assert settings.workdir == (tmp_path / "w").resolve()
    assert str(tmp_path / "w") in settings.mlflow.tracking_uri


def test_piped_summary_is_plain_and_complete(tmp_path: Path) -> None:
    card = f"/srv/{LONG}/kfp/creditops-training-2026-12-02-06-38-53-047842/write-model-card/card_html"
    summary = {
        "data_version": "6bfda2718febd7d7",
        "best_params": {"max_depth": 4, "learning_rate": 0.123456},
        "metrics": {"test.auc": 0.8123, "test.fpr": 0.04},
        "gates": [
            {"name": "auc", "passed": True, "status": "pass", "value": 0.8123, "op": ">=", "threshold": 0.8},
            {
                "name": "dp.sex",
                "passed": True,
                "status": "not_assessed",
                "value": None,
                "op": "<=",
                "threshold": 0.1,
            },
            {"name": "fpr", "passed": False, "value": 0.09, "op": "<=", "threshold": 0.05},
        ],
        "registered_version": None,
        "comparison": {
            "tuned_xgboost": {
                "auc": 0.8419,
                "gini": 0.6837,
                "ks": 0.5477,
                "brier": 0.0729,
                "cv_auc_mean": 0.8357,
                "cv_auc_sd": 0.0076,
                "n_trees": 80.0,
            },
            "logistic_regression": {
                "auc": 0.8315,
                "gini": 0.663,
                "ks": 0.5425,
                "brier": 0.0759,
                "cv_auc_mean": 0.8304,
                "cv_auc_sd": 0.005,
            },
        },  # fmt: skip
        "gate_summary": "fpr failed by 0.04",
        "model_card_html": card,
        "log": f"/srv/{LONG}/kfp/training.log",
    }
    literal = json.dumps(json.dumps(summary))
    code = f"import json; from creditops.cli import print_summary; print_summary(json.loads({literal}))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "\x1b" not in out and "[red]" not in out and "│" not in out
    lines = out.splitlines()
    assert lines[0] == "training run"
    rows = {line.split()[0]: " ".join(line.split()[1:]) for line in lines[1:]}
    assert rows["model"] == f"card {card}" and rows["step"] == f"logs /srv/{LONG}/kfp/training.log"
    assert rows["auc"] == "pass 0.8123 >= 0.8" and rows["dp.sex"] == "not_assessed n/a <= 0.1"
    # the tuned model beside its baselines, in a pipe too
    assert rows["tuned_xgboost"] == (
        "auc=0.8419 gini=0.6837 ks=0.5477 brier=0.0729 cv_auc=0.8357+-0.0076 trees=80"
    )
    assert rows["logistic_regression"].startswith("auc=0.8315") and "trees" not in rows["logistic_regression"]
    assert rows["fpr"] == "FAIL 0.0900 <= 0.05" and rows["registered"] == "not registered: fpr failed by 0.04"
    assert rows["best"] == 'params {"learning_rate": 0.1235, "max_depth": 4}'
