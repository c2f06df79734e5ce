# GlobalFunc worker image: `gf worker` on the first free port of 26000-27000, registered in
# the Redis named by GF_WORKER_REDIS_URL. Build from the repository root:
#   docker build -f docker/worker.Dockerfile -t globalfunc-worker .
# Run several with docker/compose.yml (Redis, MongoDB and N workers).
# Pure Python: no setup.py here, so no native part; its ase routes run on the pure-Python
# fallbacks (aiges.Dockerfile builds the native parts). Built and checked without a
# registry: `make images` (docker/README.md).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GF_ROOT=/srv/packages \
    GF_HOST=0.0.0.0 \
    GF_WORKER_PORTS=26000-27000 \
    GF_MODE=isolated

RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 gf

WORKDIR /opt/globalfunc
COPY pyproject.toml README.md ./
COPY globalfunc ./globalfunc
COPY gfbase ./gfbase
COPY gfgo ./gfgo
COPY server ./server
RUN pip install --no-cache-dir .

COPY --chown=10001:10001 packages /srv/packages
COPY --chown=10001:10001 docker/healthcheck.py /opt/globalfunc/healthcheck.py
USER 10001
RUN git -C /srv/packages init -q \
    && git -C /srv/packages -c user.email=gf@localhost -c user.name=gf add -A \
    && git -C /srv/packages -c user.email=gf@localhost -c user.name=gf commit -qm "image packages"

EXPOSE 26000-27000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
    CMD ["python", "/opt/globalfunc/healthcheck.py"]
ENTRYPOINT ["gf"]
CMD ["worker"]
