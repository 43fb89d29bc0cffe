# engage worker and side tools. Build: docker build -t engage .
# Multi-stage: dependencies are built in a throw-away stage; the runtime image has the
# virtualenv only, runs as an unprivileged user, and listens on 0.0.0.0 (probes, scrapes and
# forwarded user lookups come from other pods). Configure with ENGAGE_* variables.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/engage
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scoring ./scoring
COPY streams ./streams
COPY sinks ./sinks
COPY simulator ./simulator
COPY deploy/__init__.py deploy/local_kafka.py ./deploy/
RUN /opt/engage/bin/pip install --upgrade pip \
 && /opt/engage/bin/pip install ".[rocksdb]"

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 engage \
 && useradd --system --uid 10001 --gid engage --home-dir /var/lib/engage --create-home engage
COPY --from=build /opt/engage /opt/engage
ENV PATH=/opt/engage/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ENGAGE_BIND_ADDRESS=0.0.0.0 \
    ENGAGE_DATA_DIR=/var/lib/engage \
    ENGAGE_LOG_FORMAT=json
USER 10001:10001
WORKDIR /var/lib/engage
EXPOSE 6066 9464
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz/' % os.environ.get('ENGAGE_WEB_PORT', '6066'), timeout=2)"]
ENTRYPOINT ["engage"]
CMD ["worker"]
