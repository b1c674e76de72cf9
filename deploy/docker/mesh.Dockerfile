# syntax=docker/dockerfile:1.7
# quantmesh "mesh" image: the Router, the Classifier, the gateway and the profiler CLI (all but the vLLM engine).
# Build from the repository root (the context must hold pyproject.toml):
#   docker build -f deploy/docker/mesh.Dockerfile -t quantmesh/mesh:0.1.0 .
# Run one service per container: `python3 -m services.router` (default), `python3 -m services.classifier` or
# `python3 -m services.gateway`; settings come from QUANTMESH_ROUTER_* / QUANTMESH_CLASSIFIER_* /
# QUANTMESH_GATEWAY_* variables (see deploy/README.md).

FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY quantmesh ./quantmesh
COPY core ./core
COPY services ./services
COPY tools ./tools
COPY clients ./clients
# Wheels for quantmesh and all of its (non-engine) dependencies, so the runtime stage installs offline.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
# Must equal pyproject.toml's version (tests/deploy check it).
ARG QUANTMESH_VERSION=0.1.0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 quantmesh \
 && useradd --system --uid 10001 --gid quantmesh --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin quantmesh
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels "quantmesh==${QUANTMESH_VERSION}"
COPY --chmod=0555 deploy/docker/grpc_health_check.py /usr/local/bin/quantmesh-grpc-health-check
# Numeric uid so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /app
# Router gRPC and metrics ports (the Classifier uses 50052 and 9102, the gateway 8080; deploy/README.md "Ports").
EXPOSE 50051 9101
ENV HEALTHCHECK_GRPC_ADDRESS=127.0.0.1:50051 \
    HEALTHCHECK_GRPC_SERVICE=""
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["quantmesh-grpc-health-check"]
CMD ["python3", "-m", "services.router"]
