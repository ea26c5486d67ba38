# syntax=docker/dockerfile:1
# collector as a container job. Build: `make image` (buildah, no Docker engine needed) or
#   docker build --secret id=pipconf,src=pip.conf --secret id=pipca,src=ca.pem -t collector .
# (both secrets optional). Run: docker run --rm --read-only --tmpfs /tmp -v "$PWD/out:/data" collector
#
# Debian's own Python 3.11 in both stages: security updates come from Debian, the runtime
# stage holds python3 and the virtualenv only (no pip, no compiler), and the same base can
# be made locally with debootstrap (deploy/image/base.sh) where no registry is reachable.
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim@sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251

FROM ${BASE_IMAGE} AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md LICENSE /src/
COPY collector /src/collector
# The build machine's pip settings (index, certificate) arrive as build secrets: they never
# reach a layer or this file. Without them pip uses PyPI with the system CA store.
# The emulator (moto) is an extra and must never be in the production image.
RUN --mount=type=secret,id=pipconf,target=/run/secrets/pip.conf \
    --mount=type=secret,id=pipca,target=/run/secrets/pip-ca.pem \
    if [ -s /run/secrets/pip.conf ]; then export PIP_CONFIG_FILE=/run/secrets/pip.conf; fi \
    && python3 -m venv /opt/collector \
    && /opt/collector/bin/pip install --no-cache-dir --disable-pip-version-check /src \
    && /opt/collector/bin/pip uninstall --yes pip setuptools \
    && rm -f /opt/collector/bin/activate* /opt/collector/bin/Activate.ps1 \
    && ! /opt/collector/bin/python -c "import moto" 2>/dev/null

FROM ${BASE_IMAGE}
# python3 (no -venv, no pip) and the CA store for TLS to AWS and to corporate proxies.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
    && groupadd --system --gid 10001 collector \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin collector \
    && install -d -o 10001 -g 10001 -m 0700 /data
COPY --from=build /opt/collector /opt/collector

# Read-only root filesystem: the sweep writes only to /data (the output) and /tmp (mount an
# emptyDir or tmpfs there); HOME points at /tmp for any library that wants a home directory.
ENV PATH=/opt/collector/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    COLLECTOR_OUTPUT=/data/{account_id}/{date}.jsonl.gz
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# No VOLUME: it cannot be undone downstream and would hide bind mounts under some builders;
# mount the output directory (or an emptyDir, or use S3) at /data.
WORKDIR /data
# collector is PID 1 and handles SIGTERM itself: a graceful stop (exit 143, .part kept for
# --resume) within shutdown_grace plus the final flush; give it at least 30 s before SIGKILL.
STOPSIGNAL SIGTERM

# Last, so a new commit (REVISION) does not rebuild the layers above.
ARG VERSION=0.1.0
ARG SOURCE_URL=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="collector" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.description="Bulk collector of AWS IAM Access Advisor data into JSONL" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
ENTRYPOINT ["collector"]
CMD ["sweep"]
