# The rollout controller / router image (creditops.deploy: `creditops rollout ...`, `creditops deploy ...`):
# the project image (same lock) with the CLI as entry point; it patches InferenceServices through the
# Kubernetes API with the service account of manifests/base/controller (RBAC limited to inferenceservices).
# Build from the repo root after the project image:
#   docker build -f controller.Dockerfile --build-arg BASE_IMAGE=creditops:TAG -t creditops-controller:TAG .
# Run: docker run creditops-controller:TAG rollout --help (a CLI run per rollout: no server, no HEALTHCHECK)
ARG BASE_IMAGE=ghcr.io/creditops/creditops:0.1.0-python3.11
#checkov:skip=CKV_DOCKER_7:FROM is the BASE_IMAGE build arg, always the project image of the same commit (tagged, default 0.1.0)
FROM ${BASE_IMAGE}
WORKDIR /app
USER 10001
HEALTHCHECK NONE
ENTRYPOINT ["creditops"]
CMD ["--help"]
