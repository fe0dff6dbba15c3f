# syntax=docker/dockerfile:1
#
# Pochta's image: one image for every process (api, worker, scheduler, migrate);
# the command picks which. See docs/deploy.md.
#
# Both stages start from the same pinned base, so the virtual environment built in
# the first one (whose python is a symlink to the base's /usr/local/bin/python3.11)
# runs unchanged in the second. To move to a newer patch release, change this tag
# (and, if you pin by digest, the digest) in one place.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: resolve and install everything into /opt/venv -------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, read from pyproject.toml itself, so that a change to the code
# alone reuses this (slow) layer. scripts/runtime-requirements lists them; the test
# of this install (tests/test_production_install.py) runs the same script and the
# same three pip steps. Every dependency installs from a binary wheel, so no compiler
# is needed here either; if one ever needs building, add build tools to this stage only.
COPY pyproject.toml ./
COPY scripts/runtime-requirements ./scripts/
RUN python scripts/runtime-requirements pyproject.toml > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# Then the project itself: packages `app` and `worker` and the `pochta` console
# script. README* is a wildcard (pyproject.toml names README.md) so that a checkout
# without it still builds; pyproject.toml is listed again so the COPY is never empty.
COPY pyproject.toml README* ./
COPY app ./app
COPY worker ./worker
RUN pip install --no-deps . \
    && pip check

# --- runtime: the venv, the migrations, nothing else ---------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="pochta" \
      org.opencontainers.image.description="Self-hosted email-sending service: HTTP in, ESMTP out."

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# A fixed uid/gid, so volume ownership and host-side policies can name it.
RUN groupadd --system --gid 10001 pochta \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app/var \
        --no-create-home --shell /usr/sbin/nologin pochta

# Code stays owned by root (the process cannot change it); only /app/var is writable.
COPY --from=builder /opt/venv /opt/venv

# `pochta migrate` runs the scripts in ./migrations/; ./alembic.ini is for running the
# `alembic` command by hand. tests/test_production_install.py lays out its working
# directory from the COPY lines of this stage.
WORKDIR /app
COPY alembic.ini ./
COPY migrations ./migrations
# The embedded defaults (sqlite:///./var/pochta.db, sqla+sqlite:///./var/broker.db)
# resolve here; with PostgreSQL and Redis nothing is written to it.
RUN mkdir -p /app/var && chown 10001:10001 /app/var && chmod 0750 /app/var

USER 10001:10001

EXPOSE 8000

# Liveness of the API process (GET /healthz does no I/O). The slim image has no
# curl; python's urllib raises on an HTTP error status or a connection error, so the
# exit status is the verdict. Worker, scheduler and migrate containers run the same
# image without an HTTP server: docker-compose.yml disables this check for them.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["pochta", "api", "--host", "0.0.0.0", "--port", "8000"]
