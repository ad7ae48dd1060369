# The explainer image (`:explain`, default `treeshap` backend, license-clean): the project image plus its entry point.
# Build from the repo root after the project image:
#   docker build -t creditops:TAG . && docker build -f kserve/explainer.Dockerfile --build-arg BASE_IMAGE=creditops:TAG -t creditops-explainer:TAG .
# Run: docker run -v /path/to/bundle:/mnt/models creditops-explainer:TAG --model_name credit-pd
ARG BASE_IMAGE=ghcr.io/creditops/creditops:0.1.0-python3.11
#checkov:skip=CKV_DOCKER_7:FROM is the BASE_IMAGE build arg, always the project image of the same commit (tagged, default 0.1.0)
FROM ${BASE_IMAGE}
COPY --chown=10001:10001 kserve/explainer /app/kserve/explainer
ENV PYTHONPATH=/app/kserve
WORKDIR /app
USER 10001
EXPOSE 8080
# Docker-level health for `docker run`; on Kubernetes the readiness probe of the manifest is what counts.
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=2)"]
ENTRYPOINT ["python", "-m", "explainer", "--bundle", "/mnt/models"]
