# One image for every Boxoffice service; the command selects which one runs:
#   boxoffice-api | boxoffice-relay | boxoffice-notifier -Q notifier.email | boxoffice-reaper |
#   boxoffice-scheduler | python -m boxoffice_db.migrate |
#   celery -A boxoffice_messaging.flower_app flower (Flower, for the chart's optional component)
# Build with `make image`; `make image-test` builds it with podman and runs every service from it.
#
# BASE_IMAGE is any Debian-based image with CPython 3.11 as `python` (and pip, groupadd, useradd):
# the official slim image by default, or the one `make image-base` builds from Debian's packages
# with mmdebstrap where no container registry can be reached. Both stages use it, so the
# virtualenv's interpreter is the same file at build and at run time.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- build: resolve the locked dependencies into a virtualenv with uv ------------------------
FROM ${BASE_IMAGE} AS build
ARG UV_VERSION=0.13.8
# PIP_BREAK_SYSTEM_PACKAGES: a Debian-packaged Python marks itself externally managed; uv only
# lands in this throw-away stage. A CA bundle can be handed in as the build secret `ca_bundle`
# (a TLS-inspecting proxy): it is mounted for the download steps and never stored in a layer.
RUN --mount=type=secret,id=ca_bundle,required=false \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
 && PIP_BREAK_SYSTEM_PACKAGES=1 python -m pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# The lockfile and workspace manifests first, so the dependency layer is cached across code edits.
COPY pyproject.toml uv.lock ./
COPY libs/bookings/pyproject.toml libs/bookings/
COPY libs/client/pyproject.toml libs/client/
COPY libs/contracts/pyproject.toml libs/contracts/
COPY libs/db/pyproject.toml libs/db/
COPY libs/messaging/pyproject.toml libs/messaging/
COPY libs/payments/pyproject.toml libs/payments/
COPY libs/settings/pyproject.toml libs/settings/
COPY libs/telemetry/pyproject.toml libs/telemetry/
COPY services/booking/pyproject.toml services/booking/
COPY services/notifier/pyproject.toml services/notifier/
COPY services/reaper/pyproject.toml services/reaper/
COPY services/scheduler/pyproject.toml services/scheduler/
COPY tools/codegen/pyproject.toml tools/codegen/
COPY tools/devstack/pyproject.toml tools/devstack/
ENV SERVICES="boxoffice-booking boxoffice-notifier boxoffice-reaper boxoffice-scheduler"
# Third-party dependencies of the four services only: no dev tools, no devstack (local PostgreSQL
# and Redis wheels), no workspace code yet.
RUN --mount=type=secret,id=ca_bundle,required=false \
    if [ -s /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi \
 && for service in $SERVICES; do \
      uv sync --frozen --no-dev --inexact --no-install-workspace --package "$service" || exit 1; \
    done \
 && uv sync --frozen --no-dev --inexact --no-install-workspace --package boxoffice-messaging --extra flower
COPY libs libs
COPY services services
COPY tools tools
# The workspace packages themselves, as wheels (not editable: /src does not ship); building
# them fetches their build backend.
RUN --mount=type=secret,id=ca_bundle,required=false \
    if [ -s /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi \
 && for service in $SERVICES; do \
      uv sync --frozen --no-dev --inexact --no-editable --package "$service" || exit 1; \
    done

# ---- runtime: the virtualenv on a clean Python, as a non-root user ----------------------------
FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="boxoffice" \
      org.opencontainers.image.description="Boxoffice seat booking: API, relay, notifier, reaper, scheduler"
RUN groupadd --gid 10001 boxoffice \
 && useradd --uid 10001 --gid boxoffice --no-create-home --home-dir /tmp --shell /usr/sbin/nologin boxoffice
COPY --from=build --chown=root:root /app/.venv /app/.venv
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    BOXOFFICE_API_HOST=0.0.0.0
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000 9100
# No ENTRYPOINT wrapper: the service is PID 1 and receives SIGTERM itself (uvicorn drains
# requests, Celery warm-shuts down, the relay finishes its batch). Override the command to pick
# a service, e.g. `docker run boxoffice/boxoffice boxoffice-reaper`.
CMD ["boxoffice-api"]
