# The drift-detector image (default `scipy` backend, license-clean): the project image plus its entry point.
# It reuses the explainer's payload parser, so both server packages are copied.
# Build from the repo root after the project image:
#   docker build -f kserve/detector.Dockerfile --build-arg BASE_IMAGE=creditops:TAG -t creditops-detector:TAG .
# Run: docker run -v /path/to/bundle:/mnt/models creditops-detector:TAG --model_name credit-pd-drift
ARG BASE_IMAGE=creditops:latest
FROM ${BASE_IMAGE}
COPY --chown=10001:10001 kserve/explainer /app/kserve/explainer
COPY --chown=10001:10001 kserve/detector /app/kserve/detector
ENV PYTHONPATH=/app/kserve
WORKDIR /app
USER 10001
EXPOSE 8080
ENTRYPOINT ["python", "-m", "detector", "--bundle", "/mnt/models"]
