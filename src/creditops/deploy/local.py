"""Local target wiring: one real predictor process per version, the router in front, a steady client stream.

Used by ``creditops rollout`` (local target), the demo's closing canary, the integration tests and
``bench/rollout.py``. Model servers are the unchanged ``python -m predictor`` started through
:func:`creditops.serve_local.running_process`.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from creditops.serve_local import free_port, kserve_dir, running_process


def predictor_command(
    model: str,
    audit_url: str,
    port: int,
    model_name: str,
    *,
    tracking_uri: str | None = None,
    feast_repo: str | None = None,
    launcher: Sequence[str] = ("-m", "predictor"),
    auth: Sequence[str] = ("--auth", "anonymous"),
) -> list[str]:
    """Command line of a loopback predictor for ``model`` (bundle directory or ``models:/`` URI).

    ``launcher`` is how Python starts it; tests and the bench pass ``("-m", "router.faults", ..., "--")`` to
    build a deliberately bad challenger. ``auth`` are the predictor's authentication arguments (anonymous,
    named explicitly, for the local bench and tests behind the router).
    """
    source = ["--bundle", model] if Path(model).is_dir() else ["--model-uri", model]
    cmd = [sys.executable, *launcher, *source, "--audit-url", audit_url, "--model-name", model_name]
    cmd += ["--host", "127.0.0.1", "--http-port", str(port), *auth]
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    if feast_repo:
        cmd += ["--feast-repo", feast_repo]
    return cmd


@contextmanager
def model_server(
    cmd_for_port: Callable[[int], list[str]],
    model_name: str,
    log_path: Path,
    env: dict[str, str] | None = None,
    timeout_s: float = 120.0,
) -> Iterator[str]:
    """Start one predictor on a free port, wait until its model is ready, yield its URL, then stop it."""
    port = free_port()
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(kserve_dir()), full_env.get("PYTHONPATH")]))
    base = f"http://127.0.0.1:{port}"
    with running_process(
        cmd_for_port(port), full_env, f"{base}/v2/models/{model_name}/ready", log_path, timeout_s
    ):
        yield base


@dataclass
class LoadStats:
    """What the clients saw."""

    requests: int = 0
    rows: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    arms: dict[str, int] = field(default_factory=dict)


class SteadyLoad:
    """Client threads posting V1 requests to ``url`` back to back until stopped; counts client-visible errors.

    Args:
        url: The ``:predict`` URL (the router's).
        make_instances: ``i -> instances`` of request ``i`` (raw features or applicant ids).
        threads: Concurrent clients.
        pause_s: Pause between a client's requests (0 = back to back).
    """

    def __init__(
        self,
        url: str,
        make_instances: Callable[[int], list[dict[str, Any]]],
        *,
        threads: int = 4,
        pause_s: float = 0.0,
        caller_id: str = "load",
    ) -> None:
        self.url, self.make_instances, self.threads, self.pause_s = url, make_instances, threads, pause_s
        self.caller_id = caller_id
        self.stats = LoadStats()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._counter = 0
        self._workers: list[threading.Thread] = []

    def _next(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def _run(self) -> None:
        with httpx.Client(timeout=60, headers={"X-Caller-Id": self.caller_id}) as client:
            while not self._stop.is_set():
                instances = self.make_instances(self._next())
                start = time.monotonic()
                try:
                    r = client.post(self.url, json={"instances": instances})
                    ok, why, arm = (
                        r.status_code == 200,
                        f"HTTP {r.status_code}: {r.text[:200]}",
                        r.headers.get("x-creditops-arm", ""),
                    )
                except httpx.HTTPError as exc:
                    ok, why, arm = False, f"{type(exc).__name__}: {exc}", ""
                elapsed = (time.monotonic() - start) * 1000.0
                with self._lock:
                    s = self.stats
                    s.requests += 1
                    s.rows += len(instances)
                    s.latencies_ms.append(elapsed)
                    s.arms[arm] = s.arms.get(arm, 0) + 1
                    if not ok:
                        s.errors += 1
                        if len(s.error_samples) < 5:
                            s.error_samples.append(why)
                if self.pause_s:
                    time.sleep(self.pause_s)

    def __enter__(self) -> SteadyLoad:
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(60)
