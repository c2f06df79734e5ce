# A Ray node with GlobalFunc and Ray (the version of the `ray` extra): head, worker or driver of docker/ray-compose.yml.
# Ray workers need no checkout of the packages: `gf map` ships each function's stored
# version by content hash. Build from the repository root:
#   docker build -f docker/ray.Dockerfile -t globalfunc-ray .
# Pure Python (no setup.py here: Ray tasks use no native part). Built and checked without a
# registry: `make images` (docker/README.md).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

RUN useradd --create-home --uid 10001 gf
WORKDIR /opt/globalfunc
COPY pyproject.toml README.md ./
COPY globalfunc ./globalfunc
COPY gfbase ./gfbase
COPY gfgo ./gfgo
COPY server ./server
RUN pip install --no-cache-dir . "ray==2.60.0"

USER 10001
WORKDIR /home/gf
EXPOSE 6379 10001
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s CMD ["ray", "status"]
CMD ["ray", "start", "--head", "--port=6379", "--ray-client-server-port=10001", "--block"]
