# The explainer image (`:explain`, default `treeshap` backend, license-clean): the project image plus its entry point.
# Build from the repo root after the project image:
#   docker build -t creditops:TAG . && docker build -f kserve/explainer.Dockerfile --build-arg BASE_IMAGE=creditops:TAG -t creditops-explainer:TAG .
# Run: docker run -v /path/to/bundle:/mnt/models creditops-explainer:TAG --model_name credit-pd
ARG BASE_IMAGE=creditops:latest
FROM ${BASE_IMAGE}
COPY --chown=10001:10001 kserve/explainer /app/kserve/explainer
ENV PYTHONPATH=/app/kserve
WORKDIR /app
USER 10001
EXPOSE 8080
ENTRYPOINT ["python", "-m", "explainer", "--bundle", "/mnt/models"]
