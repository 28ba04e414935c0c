# docker-covenant as a container. Build: docker build -t docker-covenant .
# Run it with the docker run line of README.adoc, "As a container" (tests/test_image.py runs that line).

FROM python:3.11-slim-bookworm AS build
# systemd-python builds from source against libsystemd.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev pkg-config libsystemd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY constraints.txt setup.py README.adoc ./
COPY covenant ./covenant
# Every dependency as a wheel, at the pinned versions; then a virtual environment made
# from those wheels only (--no-index): the final stage copies that one directory.
# (setup.py builds with the base image's setuptools and wheel: those are not pinned here.)
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt . \
 && python -m venv --without-pip /opt/docker-covenant \
 && pip --python /opt/docker-covenant/bin/python install --no-cache-dir --no-index \
        --find-links /wheels -c constraints.txt docker-covenant

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="docker-covenant" \
      org.opencontainers.image.description="Stop Docker containers that break the host's policy, as they start" \
      org.opencontainers.image.version="1.0.0" \
      org.opencontainers.image.licenses="MIT"
COPY --from=build /opt/docker-covenant /opt/docker-covenant
COPY docker-covenant.yml /etc/docker-covenant/docker-covenant.yml
ENV PATH=/opt/docker-covenant/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /
# Not root: it reaches the Docker socket through the socket's group (docker run --group-add).
USER 10001:10001
# /healthz answers 200 while the events stream is connected (README.adoc, "Metrics, health
# and status"); the CMD serves it on the container's own loopback.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9377/healthz', timeout=4)"]
ENTRYPOINT ["docker-covenant"]
CMD ["--metrics-address", "127.0.0.1:9377"]
