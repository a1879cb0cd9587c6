# syntax=docker/dockerfile:1.7
# The platform image: Ray + Serve + the vibecode packages. Used by docker-compose.yml (head and
# workers) and by the KubeRay RayService, which overrides the command with its own `ray start`.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# Dependencies first, from the hashed lock only, so source edits reuse this layer.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --require-hashes -r /tmp/requirements.lock
WORKDIR /src
COPY pyproject.toml README.md ./
COPY actors actors
COPY serve_apps serve_apps
COPY sandbox sandbox
COPY collab collab
COPY state state
COPY accounts accounts
COPY cluster cluster
# --no-deps: everything the code needs is already installed from the lock, with hashes.
RUN pip install --no-deps --no-build-isolation . \
 && cd / && python -c "import cluster.settings, state.migrations"

FROM ${PYTHON_IMAGE}
# haproxy: Serve's HAProxy ingress (the manifests point RAY_SERVE_HAPROXY_BINARY_PATH at it, as
# `vibecode up` does locally); bubblewrap: the sandbox backend; postgresql-client: psql and
# pg_isready for operators (15, like the compose server); wget: KubeRay's probes, healthchecks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      haproxy bubblewrap postgresql-client wget ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# uid 1000 like the upstream Ray images. Never run bubblewrap as root (see design/facts.md).
RUN groupadd --gid 1000 vibecode \
 && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash vibecode \
 && install -d -o vibecode -g vibecode /var/lib/vibecode
COPY --from=build /opt/venv /opt/venv
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    HF_HUB_OFFLINE=1 \
    VIBECODE_DATA_DIR=/var/lib/vibecode
USER vibecode
WORKDIR /home/vibecode
# 8000 gateway (Serve), 6379 GCS, 8265 dashboard, 10001 Ray client, 8080 Ray metrics export.
EXPOSE 8000 6379 8265 10001 8080
ENTRYPOINT ["vibecode"]
CMD ["up"]
