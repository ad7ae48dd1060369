# The alibi image: the explainer with `--backend alibi` (alibi TreeShap) and the detector with
# `--backend alibi-detect` (KSDrift), built from ITS OWN lock (kserve/alibi/requirements.lock: numpy 1.26,
# xgboost 3.0.5, kserve 0.20.0), never from the core lock.
# LICENCE: alibi and alibi-detect are Business Source License 1.1: production use needs a commercial licence
# from Seldon. The default explainer/detector images carry no BSL code; use this one only where that is settled.
# Build from the repo root (no project image needed):
#   docker build -f kserve/alibi.Dockerfile -t creditops-alibi:TAG .
# Run (the first argument picks the server; KServe container args replace CMD):
#   docker run -v /b:/mnt/models creditops-alibi:TAG explainer --backend alibi --bundle /mnt/models --model_name credit-pd
#   docker run -v /b:/mnt/models creditops-alibi:TAG detector --backend alibi-detect --bundle /mnt/models
FROM python:3.11.7-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m pip install uv==0.13.8
WORKDIR /src
COPY kserve/alibi/requirements.lock kserve/alibi/requirements.lock
RUN uv venv /opt/venv && uv pip sync --python /opt/venv/bin/python kserve/alibi/requirements.lock
# creditops without its (numpy 2) dependencies: the servers import only artifact, governance.explain and
# monitoring.drift, whose imports the alibi lock satisfies. setuptools needs every mapped package dir present.
COPY pyproject.toml README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
COPY feast_repo ./feast_repo
RUN uv pip install --python /opt/venv/bin/python --no-deps . \
 && /opt/venv/bin/python -c "import alibi.explainers, alibi_detect.cd, creditops.artifact, creditops.monitoring.drift"

FROM python:3.11.7-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home creditops
COPY --from=build /opt/venv /opt/venv
COPY --chown=10001:10001 kserve/explainer /app/kserve/explainer
COPY --chown=10001:10001 kserve/detector /app/kserve/detector
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/app/kserve PYTHONUNBUFFERED=1
WORKDIR /app
USER 10001
EXPOSE 8080
# Docker-level health for `docker run`; on Kubernetes the readiness probe of the manifest is what counts.
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=2)"]
ENTRYPOINT ["python", "-m"]
CMD ["explainer", "--backend", "alibi", "--bundle", "/mnt/models"]
