# An AIGES plugin image: the loader starts `gf aiges serve` (aiges.toml's pythonPluginCmd).
# Build from the repository root:  docker build -f docker/aiges.Dockerfile -t globalfunc-aiges .
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
RUN pip install --no-cache-dir .
COPY --chown=10001:10001 packages /srv/packages

USER 10001
WORKDIR /home/gf
# Serve a registry function by default; mount a wrapper project and pass --wrapper DIR instead.
ENTRYPOINT ["gf", "--root", "/srv/packages", "aiges", "serve"]
CMD ["--function", "Base.inverse_time_str"]
