# syntax=docker/dockerfile:1
# One image for every service; the command picks which one runs:
#   docker run ci-medic service monitor      (or analyzer, safety-gate, executor, approval,
#   notifier, projector), `db migrate` for the one-shot migration job.
# The base is pinned to an exact Python release (the interpreter the test suite runs on is
# 3.11); bump it deliberately, and pin the digest too when a registry mirror is at hand.
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

# --- build: wheels only (every dependency ships manylinux wheels, so no compiler is needed) ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/medic
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
# Non-editable install: the final stage gets site-packages, not a pointer back to /src.
RUN /opt/medic/bin/pip install --no-compile . \
    && /opt/medic/bin/medic --help >/dev/null

# --- runtime: the venv and nothing else; no compilers, no pip cache, a non-root user ---
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="ci-medic" \
      org.opencontainers.image.description="CI failure monitor and safe auto-remediation for GitHub Actions" \
      org.opencontainers.image.source="https://github.com/ci-medic/ci-medic"
ENV PATH=/opt/medic/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MEDIC_HTTP_HOST=0.0.0.0 \
    MEDIC_HTTP_PORT=8080 \
    MEDIC_DATA_DIR=/var/lib/medic
RUN groupadd --system --gid 10001 medic \
    && useradd --system --uid 10001 --gid medic --home-dir /var/lib/medic --shell /usr/sbin/nologin medic \
    && mkdir -p /var/lib/medic \
    && chown medic:medic /var/lib/medic
COPY --from=build /opt/medic /opt/medic
USER 10001:10001
WORKDIR /var/lib/medic
EXPOSE 8080
# Liveness as Kubernetes probes it: /healthz on the service's own port (stdlib only: no curl here).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MEDIC_HTTP_PORT', '8080'), timeout=2)"]
ENTRYPOINT ["medic"]
CMD ["--help"]
