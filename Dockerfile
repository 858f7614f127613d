# syntax=docker/dockerfile:1
# One image for every Fly process group (gateway, sms, worker); fly.toml picks the command.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Compilers only in the build stage, for any dependency without a wheel for this platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc=4:12.* g++=4:12.* \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
RUN python -m venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH

# Dependencies in their own layer: it is rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN mkdir -p shared webhook_gateway worker sms_sender wassla \
 && touch shared/__init__.py webhook_gateway/__init__.py worker/__init__.py \
          sms_sender/__init__.py wassla/__init__.py \
 && pip install . \
 && pip uninstall -y wassla-voice

COPY shared ./shared
COPY webhook_gateway ./webhook_gateway
COPY worker ./worker
COPY sms_sender ./sms_sender
COPY wassla ./wassla
RUN pip install --no-deps . \
 && python -m compileall -q /app/.venv/lib
# Models the worker needs, fetched at build time, never at call time (Silero VAD ships in its
# wheel; download-files covers any plugin that downloads).
RUN python -m worker download-files

FROM python:3.11-slim
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin wassla
WORKDIR /app
COPY --from=build --chown=10001:10001 /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    WASSLA_ENV=production \
    WASSLA_DATA_DIR=/tmp/wassla
USER 10001
EXPOSE 8080 8081 8082
# Exec form: python is PID 1 and receives Fly's SIGTERM itself (no shell, no wrapper).
CMD ["python", "-m", "webhook_gateway"]
