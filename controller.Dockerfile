# The rollout controller / router image (creditops.deploy: `creditops rollout ...`, `creditops deploy ...`):
# the project image (same lock) with the CLI as entry point; it patches InferenceServices through the
# Kubernetes API with the service account of manifests/base/controller (RBAC limited to inferenceservices).
# Build from the repo root after the project image:
#   docker build -f controller.Dockerfile --build-arg BASE_IMAGE=creditops:TAG -t creditops-controller:TAG .
# Run: docker run creditops-controller:TAG rollout --help
ARG BASE_IMAGE=creditops:latest
FROM ${BASE_IMAGE}
WORKDIR /app
USER 10001
EXPOSE 8080
ENTRYPOINT ["creditops"]
CMD ["--help"]
