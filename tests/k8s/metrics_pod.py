"""A predictor pod's metrics for the real-Prometheus test: the predictor's own metric objects on ``/metrics``.

    python metrics_pod.py PORT MODEL_VERSION

Serves the default registry (the predictor's series and the process collector's
``process_start_time_seconds``) on ``127.0.0.1:PORT`` and applies one JSON command per stdin line, answering
``ok`` on stdout once applied: ``{"requests": n, "code": "200", "seconds": s}`` counts ``n`` requests that
took ``s`` seconds, ``{"decisions": n, "decision": "approve"}`` counts answered rows as the predictor does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "kserve"))

from prometheus_client import start_http_server  # noqa: E402

from predictor import metrics  # noqa: E402

MODEL = "credit-pd"


def main() -> None:
    port, version = int(sys.argv[1]), sys.argv[2]
    metrics.set_model_info(MODEL, version, "credit_scoring_v1")
    start_http_server(port, addr="127.0.0.1")
    print("ok", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if "requests" in command:
            n = int(command["requests"])
            metrics.REQUESTS.labels(model=MODEL, protocol="v1", code=command["code"]).inc(n)
            for _ in range(n):
                metrics.LATENCY.labels(model=MODEL, protocol="v1").observe(float(command["seconds"]))
        else:
            metrics.count_decisions(MODEL, [command["decision"]] * int(command["decisions"]))
        print("ok", flush=True)


if __name__ == "__main__":
    main()
