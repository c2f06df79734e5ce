# An AIGES plugin image: the loader starts `gf aiges serve --native` (aiges.toml's pythonPluginCmd).
# Build from the repository root:  docker build -f docker/aiges.Dockerfile -t globalfunc-aiges .
# Stage 1 compiles the C++ gRPC server (native/); stage 2 carries only its runtime libraries.
FROM python:3.11-slim-bookworm AS native

ENV PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        g++=4:12.2.* make=4.3-* pkg-config=1.8.* \
        libgrpc++-dev=1.51.* protobuf-compiler-grpc=1.51.* \
        libprotobuf-dev=3.21.* protobuf-compiler=3.21.* \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir pybind11==2.13.6
WORKDIR /src
COPY native ./native
COPY server/aiges/proto ./server/aiges/proto
RUN make -C native PYTHON=python3 ../server/aiges/_native.cpython-311-x86_64-linux-gnu.so

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgrpc++1.51=1.51.* libprotobuf32=3.21.* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 gf
WORKDIR /opt/globalfunc
COPY pyproject.toml README.md ./
COPY globalfunc ./globalfunc
COPY gfbase ./gfbase
COPY gfgo ./gfgo
COPY server ./server
COPY --from=native /src/server/aiges/_native.cpython-311-x86_64-linux-gnu.so ./server/aiges/
RUN pip install --no-cache-dir .
COPY --chown=10001:10001 packages /srv/packages

USER 10001
WORKDIR /home/gf
# Serve a registry function by default; mount a wrapper project and pass --wrapper DIR instead.
ENTRYPOINT ["gf", "--root", "/srv/packages", "aiges", "serve", "--native"]
CMD ["--function", "Base.inverse_time_str"]
