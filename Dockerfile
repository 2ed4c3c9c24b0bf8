# reconciler controller image: `reconciler apply /specs` as PID 1.
#
#   docker build -t reconciler .
#   docker run -d --name reconciler --stop-timeout 60 \
#       -v "$PWD/specs:/specs:ro" -v reconciler-state:/var/lib/reconciler \
#       -p 127.0.0.1:9100:9100 reconciler
#
# A plain Dockerfile: no BuildKit-only syntax, so the classic builder, BuildKit, buildah
# and podman all build it. See docs/DEPLOY.md for the choices made here.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# The controller's own user (a fixed uid, so Kubernetes' runAsNonRoot can check it and
# volumes can be prepared for it), its state directory (0700, as the controller demands)
# and an empty /specs for the task documents to be mounted over.
RUN groupadd --gid 10001 reconciler \
 && useradd --uid 10001 --gid 10001 --no-log-init --create-home --home-dir /home/reconciler \
        --shell /usr/sbin/nologin reconciler \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/reconciler \
 && install -d -o root -g root -m 0755 /specs

# Installed as a normal (not editable) package; the source is removed again.
WORKDIR /tmp/reconciler-src
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
RUN pip install --no-cache-dir ".[etcd]" \
 && cd / && rm -rf /tmp/reconciler-src \
 && reconciler --version

WORKDIR /home/reconciler
ENV RECONCILER_STATE_DIR=/var/lib/reconciler
VOLUME ["/var/lib/reconciler"]
USER 10001:10001

# Metrics and health. Inside a container the network namespace is the boundary, so the
# image listens on all of its interfaces; publish the port to the host's loopback only
# (`-p 127.0.0.1:9100:9100`) unless a scraper elsewhere needs it.
EXPOSE 9100
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9100/healthz', timeout=4)"]

# SIGTERM (the default stop signal) stops every run within its grace period, then the
# controller exits 0: give `docker stop` more than the longest terminationGracePeriodSeconds
# of your tasks (`--stop-timeout 60`; Docker's default is 10 s). No init process is needed:
# the controller reaps orphaned grandchildren itself when it is PID 1.
STOPSIGNAL SIGTERM
ENTRYPOINT ["reconciler"]
CMD ["apply", "/specs", "--http", "0.0.0.0:9100"]
