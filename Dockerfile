# syntax=docker/dockerfile:1
#
# reviewflow image: one image for the API server (the default command), the workers
# (`reviewflow worker`) and the migrations (`reviewflow db upgrade`). See docs/deploy.md.
#
#   docker build -t reviewflow:0.1.0 .
#
# Both stages use the same base, so the virtualenv built in the first one runs unchanged in the
# second (its interpreter is the base image's /usr/local/bin/python3.12). The Debian release is
# named in the tag (trixie) so that the apt pins below stay meaningful.

ARG PYTHON_IMAGE=python:3.12-slim-trixie

# --- build: the reviewflow wheel, installed with its extras into /opt/venv ---------------------
FROM ${PYTHON_IMAGE} AS build

# Extras installed with the wheel: `server` (FastAPI, uvicorn, prometheus_client) for the default
# command, `postgres` (psycopg, psycopg_pool) for the workers and migrations, `review` for the tools
# the review checks run (ruff, pytest, coverage, bandit, detect-secrets, pip-audit, textstat,
# pyspellchecker). A plain `reviewflow` is the embedded engine and CLI on SQLite only.
ARG EXTRAS=server,postgres,review

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src

# The wheel's file name carries the version: install it by path, with the extras appended.
RUN python -m venv /opt/venv \
 && pip wheel --no-cache-dir --no-deps --wheel-dir /dist . \
 && for wheel in /dist/reviewflow-*.whl; do \
        /opt/venv/bin/pip install --no-cache-dir "${wheel}[${EXTRAS}]"; \
    done \
 && /opt/venv/bin/reviewflow --version

# --- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# git: reviews read the change from git (diffs, merge-base, worktrees for benchmarks).
# tini: PID 1 that forwards SIGTERM to reviewflow alone (the worker drains: its running tasks
# are not signalled directly) and reaps the orphaned grandchildren that review tools leave.
# Versions are pinned to the Debian trixie series (security updates still apply on rebuild).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        git=1:2.47.* \
        tini=0.19.* \
 && rm -rf /var/lib/apt/lists/*

# A fixed, numeric, non-root UID/GID: Kubernetes' runAsNonRoot can check it, and volumes can be
# prepared for it (deploy/k8s/*.yaml use runAsUser/fsGroup 10001).
RUN groupadd --system --gid 10001 reviewflow \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/reviewflow --create-home \
        --shell /usr/sbin/nologin reviewflow

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/reviewflow

# Run directories (.reviewflow/runs/<run_id>/) are written under the working directory.
WORKDIR /home/reviewflow
USER 10001:10001

EXPOSE 8000

# /health answers while the process is alive; urllib raises (exit 1) on an error status or no
# answer, so no curl is needed in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

ENTRYPOINT ["/usr/bin/tini", "--"]
# Inside a container the server must listen on all interfaces: the published port (compose
# binds it to 127.0.0.1 on the host) or the Kubernetes Service reaches it from outside.
CMD ["reviewflow", "serve", "--host", "0.0.0.0", "--port", "8000"]
