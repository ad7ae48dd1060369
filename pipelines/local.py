"""Run the pipelines on this machine with the KFP local runner.

The SubprocessRunner runs each step as a subprocess of this interpreter (``use_venv=False``): every
dependency is already installed in the project's venv and nothing is downloaded at run time. The runner's
full output (each step's logs) goes to ``<workdir>/kfp/<run>.log``; the console shows one line per step.
"""

import contextlib
import io
import json
import re
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from kfp import local

from creditops.config import Settings
from creditops.errors import CreditOpsError
from pipelines.training import training_pipeline

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_START = re.compile(r"Executing task '([^']+)'")
_END = re.compile(r"Task '([^']+)' finished with status (\w+)")


class StepProgress(io.TextIOBase):
    """A stdout stand-in: everything to the log file, one progress line per step to the console."""

    def __init__(self, log: TextIO, emit: Callable[[str], None]) -> None:
        self._log, self._emit, self._buf = log, emit, ""
        self._started: dict[str, float] = {}

    def write(self, text: str) -> int:  # noqa: D102 - io.TextIOBase protocol
        self._log.write(text)
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self._progress(_ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:  # noqa: D102 - io.TextIOBase protocol
        self._log.flush()

    def _progress(self, line: str) -> None:
        if start := _START.search(line):
            self._started[start.group(1)] = time.perf_counter()
            self._emit(f"  ▶ {start.group(1)} ...")
        elif end := _END.search(line):
            took = time.perf_counter() - self._started.get(end.group(1), time.perf_counter())
            mark = "✔" if end.group(2) == "SUCCESS" else "✘"
            self._emit(f"  {mark} {end.group(1)} {end.group(2).lower()} in {took:.1f} s")


def run_training(settings: Settings, emit: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the training pipeline end to end and return its summary (parsed from the last step's output).

    Args:
        settings: resolved settings (absolute paths); handed to the run as JSON, with its typed parameters.
        emit: where the one-line-per-step progress goes (default: this process's real stdout).
    """
    return _run(training_pipeline, "training", settings, emit)


def run_retraining(
    settings: Settings,
    reason: str,
    window_months: int = 12,
    emit: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the retraining pipeline: the last ``window_months`` of data, gated against the champion.

    Returns:
        The run summary with ``trigger_reason``, ``champion_version`` and the rollout ``handoff``.
    """
    from pipelines.retraining import retraining_pipeline

    params = {"reason": reason, "window_months": window_months}
    return _run(retraining_pipeline, "retraining", settings, emit, **params)


def _run(
    pipeline: Callable[..., Any],
    name: str,
    settings: Settings,
    emit: Callable[[str], None] | None,
    **params: Any,
) -> dict[str, Any]:
    console = sys.stdout
    emit = emit or (lambda line: print(line, file=console, flush=True))
    root = settings.workdir / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    typed = {
        "source": settings.data.source,
        "n_applicants": settings.data.n_applicants,
        "seed": settings.data.seed,
        "n_trials": settings.training.n_trials,
    }
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    with open(log_path, "w") as log, contextlib.redirect_stdout(StepProgress(log, emit)):
        try:
            task = pipeline(config=settings.model_dump_json(), **typed, **params)
        except RuntimeError as exc:
            last = "\n".join(log_path.read_text().splitlines()[-30:])
            raise PipelineFailed(f"{exc}\n--- last lines of {log_path} ---\n{last}") from exc
    summary = json.loads(task.output)
    summary["log"] = str(log_path)
    return summary


class PipelineFailed(CreditOpsError):
    """A pipeline step failed; the message carries the end of the run's log."""
