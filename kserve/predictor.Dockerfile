# The predictor image (V1 + V2 scoring, Feast online features, audit log): the project image plus its entry point.
# Build from the repo root after the project image:
#   docker build -t creditops:TAG . && docker build -f kserve/predictor.Dockerfile --build-arg BASE_IMAGE=creditops:TAG -t creditops-predictor:TAG .
# Run (KServe container args are appended to the entry point):
#   docker run -p 8080:8080 -v /path/to/bundle:/mnt/models \
#     -e CREDITOPS_FEAST_ONLINE_STORE=redis -e CREDITOPS_FEAST_REDIS=redis:6379 ... \
#     creditops-predictor:TAG --bundle /mnt/models --feast-repo /app/feast_repo \
#       --audit-url postgresql://audit@postgres:5432/audit --model-name credit-pd
#   or --model-uri models:/credit-pd@champion --tracking-uri http://mlflow:5000 instead of --bundle.
ARG BASE_IMAGE=ghcr.io/creditops/creditops:0.1.0-python3.11
#checkov:skip=CKV_DOCKER_7:FROM is the BASE_IMAGE build arg, always the project image of the same commit (tagged, default 0.1.0)
FROM ${BASE_IMAGE}
COPY --chown=10001:10001 kserve/predictor /app/kserve/predictor
# numba (TreeSHAP kernels) caches compiled code; the venv is read-only for uid 10001.
ENV PYTHONPATH=/app/kserve NUMBA_CACHE_DIR=/tmp/numba-cache
WORKDIR /app
USER 10001
EXPOSE 8080
# Docker-level health for `docker run`; on Kubernetes the readiness probe of the manifest is what counts.
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=2)"]
ENTRYPOINT ["python", "-m", "predictor"]
CMD ["--bundle", "/mnt/models", "--feast-repo", "/app/feast_repo", "--audit-url", "sqlite:////tmp/audit.db", "--http-port", "8080"]
