# hatd in a container: one HAT per container, its database an external PostgreSQL given by
# HATD_DATABASE_URL (the embedded PostgreSQL is for a laptop, not for containers).
#   docker build -t hatd .
#   docker run -e HATD_DATABASE_URL=postgresql://alice:...@db:5432/alice -e HATD_HAT_ADDRESS=https://alice.example -p 8080:8080 hatd
# deploy/compose.yaml and deploy/kubernetes/ run several HATs with one PostgreSQL.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY hatd ./hatd
COPY sql ./sql
COPY config ./config
# Editable on purpose: hatd reads sql/ and config/ beside its package, which a wheel leaves out.
# The final stage copies /app and /opt/venv to the same paths, so the install stays valid.
RUN /opt/venv/bin/pip install --editable . \
    && find /app /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/hatd --create-home \
        --shell /usr/sbin/nologin hatd
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HATD_HOST=0.0.0.0 \
    HATD_PORT=8080 \
    HATD_DATA_DIR=/var/lib/hatd
WORKDIR /var/lib/hatd
USER hatd
EXPOSE 8080
# No curl in slim images: the stdlib asks GET /health (503 or no answer: urlopen raises, exit 1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HATD_PORT', '8080'), timeout=4)"]
# hatd serve exits gracefully on SIGTERM (in-flight requests get up to 30 s): give it that long.
STOPSIGNAL SIGTERM
ENTRYPOINT ["hatd"]
CMD ["serve"]
