"""Run the compiled-from-source pipelines on this machine with the KFP local runner.

The SubprocessRunner runs each step as a subprocess of this interpreter (``use_venv=False``): every
dependency is already installed in the project's venv, and nothing is downloaded at run time.
"""

import json
import logging
from typing import Any

from kfp import local

from creditops.config import Settings
from pipelines.training import training_pipeline


def run_training(settings: Settings, quiet: bool = True) -> dict[str, Any]:
    """Run the training pipeline end to end and return its summary.

    Args:
        settings: resolved settings (absolute paths); passed to every step as JSON.
        quiet: hide the runner's per-step dump of executor inputs (status lines stay visible).
    """
    root = settings.workdir / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    if quiet:
        logging.getLogger("kfp.local").setLevel(logging.INFO)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    task = training_pipeline(config=settings.model_dump_json())
    return json.loads(task.output)
