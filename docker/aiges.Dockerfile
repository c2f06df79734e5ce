# An AIGES plugin image: the loader starts `gf aiges serve --native` (aiges.toml's pythonPluginCmd),
# or, in the loader's C mode, dlopen()s libwrapper.so (its folder: `gf aiges libpath`).
# Build from the repository root:  docker build -f docker/aiges.Dockerfile -t globalfunc-aiges .
# Stage 1 builds the wheel, native parts included (setup.py; GF_REQUIRE_NATIVE=1 makes a part
# that cannot be built fail the build); stage 2 carries only their runtime libraries. Nothing
# here names an architecture: the wheel is built for the one the image is built on.
# Built and checked without a registry (native files, ELF machine, ldd): `make images`
# (docker/README.md).
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    GF_REQUIRE_NATIVE=1 \
    GF_BUILD_JOBS=2
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        g++=4:12.2.* pkg-config=1.8.* \
        libgrpc++-dev=1.51.* protobuf-compiler-grpc=1.51.* \
        libprotobuf-dev=3.21.* protobuf-compiler=3.21.* \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY native ./native
COPY globalfunc ./globalfunc
COPY gfbase ./gfbase
COPY gfgo ./gfgo
COPY server ./server
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GF_REQUIRE_NATIVE=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgrpc++1.51=1.51.* libprotobuf32=3.21.* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 gf
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY --chown=10001:10001 packages /srv/packages

USER 10001
WORKDIR /home/gf
# Serve a registry function by default; mount a wrapper project and pass --wrapper DIR instead.
ENTRYPOINT ["gf", "--root", "/srv/packages", "aiges", "serve", "--native"]
CMD ["--function", "Base.inverse_time_str"]
