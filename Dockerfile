# docker-covenant as a container. Build: docker build -t docker-covenant .
# Run it as README.adoc shows (socket and journal mounted, --cap-drop=all, a security option).

FROM python:3.11-slim-bookworm AS build
# systemd-python builds from source against libsystemd.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev pkg-config libsystemd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY setup.py README.adoc ./
COPY covenant ./covenant
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsystemd0 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY docker-covenant.yml /etc/docker-covenant/docker-covenant.yml
ENV PYTHONUNBUFFERED=1
WORKDIR /
ENTRYPOINT ["docker-covenant"]
