"""Run the KServe predictor locally as a subprocess and talk to it over HTTP (``serve`` and ``demo``).

The server is started as ``python -m predictor`` with ``PYTHONPATH`` pointing at ``kserve/``; this module
only builds its command line and environment from the settings, so the core never imports kserve.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess  # nosec B404  # starts our own predictor from an argv list, never a shell
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from rich.console import Console
from rich.table import Table

from creditops.config import Settings
from creditops.errors import CreditOpsError


def kserve_dir() -> Path:
    """Directory holding the ``predictor``/``explainer``/``detector`` server packages."""
    env = os.environ.get("CREDITOPS_KSERVE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "kserve"


def feast_repo_dir(settings: Settings) -> Path:
    """The Feast repository the servers read (config, else ``CREDITOPS_FEAST_REPO``, else this checkout's)."""
    if settings.feast.repo_path is not None:
        return settings.feast.repo_path
    env = os.environ.get("CREDITOPS_FEAST_REPO")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "feast_repo"


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def predictor_command(
    settings: Settings, model: str, port: int, workers: int | None = None
) -> tuple[list[str], dict[str, str]]:
    """Command line and environment of the predictor server for ``model`` (bundle dir or models:/ URI).

    Key material is passed as file paths (never as values on the command line, which ``ps`` shows).
    """
    source = ["--bundle", model] if Path(model).is_dir() else ["--model-uri", model]
    cmd = [
        sys.executable,
        "-m",
        "predictor",
        *source,
        "--tracking-uri",
        settings.mlflow.tracking_uri,
        "--model-name",
        settings.serving.model_name,
        "--feast-repo",
        str(feast_repo_dir(settings)),
        "--audit-url",
        settings.audit.url,
        "--host",
        settings.serving.host,
        "--http-port",
        str(port),
        "--workers",
        str(workers or settings.serving.workers),
        "--max-batch",
        str(settings.serving.max_batch_size),
        *auth_arguments(settings),
    ]
    if settings.audit.anchor_path:
        cmd += ["--audit-anchor", settings.audit.anchor_path]
    default_data = settings.workdir / "feast"
    env = {**os.environ, **settings.feast.env(default_data), "PYTHONPATH": str(kserve_dir())}
    return cmd, env


def auth_arguments(settings: Settings) -> list[str]:
    """The predictor's authentication arguments from ``serving.auth`` (and ``serving.repository_api``)."""
    auth = settings.serving.auth
    args = ["--auth", auth.mode]
    if auth.api_key_hashes_file is not None:
        args += ["--api-key-hashes", str(auth.api_key_hashes_file)]
    if auth.jwt_key_file is not None:
        args += ["--jwt-key-file", str(auth.jwt_key_file)]
    for algorithm in auth.jwt_algorithms:
        args += ["--jwt-algorithm", algorithm]
    if auth.jwt_audience:
        args += ["--jwt-audience", auth.jwt_audience]
    if auth.jwt_issuer:
        args += ["--jwt-issuer", auth.jwt_issuer]
    if settings.serving.repository_api:
        args.append("--repository-api")
    return args


@contextmanager
def running_process(
    cmd: Sequence[str], env: Mapping[str, str], ready_url: str, log_path: Path, timeout_s: float = 90.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server command (output to ``log_path``) until ``GET ready_url`` answers 200; stop it afterwards.

    Raises:
        CreditOpsError: the process exited first (with the tail of its log), or was not ready in time.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(list(cmd), env=dict(env), stdout=log, stderr=subprocess.STDOUT)  # nosec B603  # own argv
        try:
            _wait_ready(proc, ready_url, timeout_s, log_path)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def running_predictor(settings: Settings, model: str, timeout_s: float = 180.0) -> Iterator[str]:
    """Start the predictor, wait until the model is ready, yield its base URL, stop it afterwards."""
    port = free_port()
    cmd, env = predictor_command(settings, model, port)
    host = settings.serving.host
    wildcard = host in ("0.0.0.0", "")  # nosec B104  # builds a client URL, binds nothing
    host = "127.0.0.1" if wildcard else (f"[{host}]" if ":" in host else host)
    base = f"http://{host}:{port}"
    ready = f"{base}/v2/models/{settings.serving.model_name}/ready"
    with running_process(cmd, env, ready, settings.workdir / "predictor.log", timeout_s):
        yield base


def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout_s: float, log_path: Path) -> None:
    name = Path(log_path).stem
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log_path.read_text().splitlines()[-30:])
            raise CreditOpsError(f"{name} exited with code {proc.returncode}; last log lines:\n{tail}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise CreditOpsError(f"{name} not ready after {timeout_s:.0f} s (log: {log_path})")


def serve_command(settings: Settings, model: str, port: int | None, workers: int | None = None) -> int:
    """Serve in the foreground until interrupted (:func:`run_foreground`)."""
    cmd, env = predictor_command(settings, model, port or settings.serving.port, workers)
    return run_foreground(cmd, env)


def run_foreground(cmd: Sequence[str], env: Mapping[str, str]) -> int:
    """Run a server until it exits; SIGTERM/SIGINT are passed on to it and it is always reaped.

    Returns:
        The server's exit code (0 after a requested stop).
    """
    proc = subprocess.Popen(list(cmd), env=dict(env))  # nosec B603  # argv from predictor_command, no shell

    def forward(signum: int, frame: Any) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:  # leaving for another reason: never leave the server holding the port
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code


def demo_serving(settings: Settings, summary: dict[str, Any], console: Console, n_applicants: int = 5) -> int:
    """Serve the newly registered model, score a few applicants by id over HTTP, verify the audit chain."""
    from creditops.governance.audit import AuditLog

    model_uri = f"models:/{settings.mlflow.model_name}/{summary['registered_version']}"
    ids = _sample_applicant_ids(summary, n_applicants)
    console.rule(f"serving {model_uri} (local KServe model server)")
    with running_predictor(settings, model_uri) as base:
        url = f"{base}/v1/models/{settings.serving.model_name}:predict"
        response = httpx.post(
            url,
            json={"instances": [{"applicant_id": i} for i in ids]},
            headers={"X-Caller-Id": "demo"},
            timeout=30,
        )
        if response.status_code != 200:
            raise CreditOpsError(f"predict returned {response.status_code}: {response.text}")
        _print_decisions(console, ids, response.json()["predictions"])
    report = AuditLog.open(settings.audit.url, create=False).verify(anchor_path=settings.audit.anchor_path)
    verdict = "[green]verified[/]" if report.ok else f"[red]BROKEN[/] ({report})"
    console.print(f"audit log: {report.n_records} records, hash chain {verdict}")
    return 0 if report.ok else 1


def recent_applicant_ids(summary: dict[str, Any], days: int = 30) -> list[int]:
    """Ids of the applicants who applied in the last ``days`` before the newest application.

    Scoring by id reads the online store, whose rows are as of the newest event. The synthetic world has
    no transactions after an application, so for an applicant who applied a year earlier those rows
    describe an account gone quiet (served ``days_since_last_salary`` median 297 against 21.5 in training);
    the demo scores the last month's applicants, as a lender scores today's applications. Even they drift
    (median 39), and the demo's monitoring step says so.
    """
    entities = pd.read_parquet(summary["entities_path"], columns=["applicant_id", "event_timestamp"])
    ts = pd.to_datetime(entities["event_timestamp"], utc=True)
    recent = entities.loc[ts > ts.max() - pd.Timedelta(days=days), "applicant_id"]
    return [int(i) for i in recent]


def _sample_applicant_ids(summary: dict[str, Any], n: int) -> list[int]:
    ids = pd.Series(recent_applicant_ids(summary))
    return [int(i) for i in ids.sample(min(n, len(ids)), random_state=0)]


def _print_decisions(console: Console, ids: list[int], predictions: list[dict[str, Any]]) -> None:
    table = Table(title="decisions")
    for column in ("applicant", "PD", "score", "decision", "top reasons"):
        table.add_column(column)
    for applicant, pred in zip(ids, predictions, strict=True):
        reasons = "\n".join(r["reason"] for r in pred["reasons"]) or "-"
        table.add_row(str(applicant), f"{pred['pd']:.3f}", f"{pred['score']:.0f}", pred["decision"], reasons)
    console.print(table)
