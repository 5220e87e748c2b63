# allowlist-sync container image.
#
#   docker build -t allowlist-sync .
#   docker run --rm --read-only allowlist-sync --version
#
# Both stages start from BASE_IMAGE: the runtime venv's interpreter is a link to the base image's
# python, so the two must match. Any image with python3 (>= 3.11) and its venv module works; CI
# builds with a local Debian bookworm + python3 image (tests/container/run.sh).
ARG BASE_IMAGE=python:3.12-slim

# ---------------------------------------------------------------------------------------------
# build: the project wheel plus its locked dependencies, installed into /opt/venv.
FROM ${BASE_IMAGE} AS build

# Optional: a PyPI mirror (the lock's hashes still decide what gets installed).
ARG PIP_INDEX_URL
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_INPUT=1

WORKDIR /src

# Two venvs: /opt/build holds pip and the build backend (pinned by hash in requirements-build.lock),
# /opt/venv is the runtime and gets no pip, setuptools or wheel at all: the build venv's pip installs
# into it with --python. Every dependency is a hash-checked wheel (--only-binary: no compiler needed).
# A lock that misses a dependency fails the build: --require-hashes for those of locked packages,
# `pip check` below for the project's own.
COPY requirements-build.lock requirements.lock ./
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes --only-binary :all: -r requirements-build.lock \
    && python3 -m venv --without-pip /opt/venv \
    && /opt/build/bin/pip --python /opt/venv/bin/python install \
        --require-hashes --only-binary :all: -r requirements.lock

# Sources last, so editing code does not re-download the dependencies.
COPY pyproject.toml README.md ./
COPY allowlist_sync ./allowlist_sync
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /dist . \
    && /opt/build/bin/pip --python /opt/venv/bin/python install --no-deps --no-index /dist/*.whl \
    && /opt/build/bin/pip --python /opt/venv/bin/python check \
    && /opt/venv/bin/allowlist-sync --version

# ---------------------------------------------------------------------------------------------
# runtime: the base image, a non-root user and the venv; nothing else.
FROM ${BASE_IMAGE} AS runtime

ARG BASE_IMAGE
ARG VERSION=0.0.0+unknown
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE_URL=""

LABEL org.opencontainers.image.title="allowlist-sync" \
      org.opencontainers.image.description="Keeps a dbt platform IP allowlist rule in step with Azure's AzureActiveDirectory service tag." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# Fixed IDs, so Kubernetes' runAsUser/runAsGroup/fsGroup and volume ownership can name them.
RUN groupadd --gid 10001 allowlist-sync \
    && useradd --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/cache/allowlist-sync --shell /usr/sbin/nologin allowlist-sync \
    && install -d -o 10001 -g 10001 -m 0750 /var/cache/allowlist-sync

COPY --from=build /opt/venv /opt/venv

# The root filesystem may be read-only: the only writes are the feed cache and temporary files,
# both on volumes (anonymous ones unless the runtime mounts its own, e.g. an emptyDir or tmpfs).
ENV PATH=/opt/venv/bin:${PATH} \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/cache/allowlist-sync \
    TMPDIR=/tmp \
    ALLOWLIST_SYNC_CACHE_DIR=/var/cache/allowlist-sync \
    ALLOWLIST_SYNC_LOG_FORMAT=json

USER 10001:10001
WORKDIR /var/cache/allowlist-sync
VOLUME ["/var/cache/allowlist-sync", "/tmp"]
EXPOSE 8080

# `serve` answers /livez; no curl in the image, so ask with the venv's python.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/venv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('ALLOWLIST_SYNC_HEALTH_PORT', '8080'), timeout=4)"]

ENTRYPOINT ["allowlist-sync"]
CMD ["serve"]
