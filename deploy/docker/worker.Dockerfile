# syntax=docker/dockerfile:1.7
# quantmesh InferenceWorker image for NVIDIA GPUs, on the official vLLM image (CUDA, PyTorch and vLLM inside).
# One container serves one model-quantization pair on one GPU; the model, quantization, max_model_len and
# gpu_memory_utilization come from QUANTMESH_WORKER_* variables (the vLLM flags --model, --quantization,
# --max-model-len, --gpu-memory-utilization; see deploy/README.md).
# Build from the repository root:
#   docker build -f deploy/docker/worker.Dockerfile -t quantmesh/worker:0.1.0 .
# The vLLM release must satisfy pyproject.toml's `gpu` extra (vllm>=0.11).

FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY quantmesh ./quantmesh
COPY core ./core
COPY services ./services
COPY tools ./tools
COPY clients ./clients
# quantmesh itself only: the vLLM image already holds the engine, and pip resolves the rest below.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM vllm/vllm-openai:v0.11.0
# Must equal pyproject.toml's version (tests/deploy check it).
ARG QUANTMESH_VERSION=0.1.0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/quantmesh \
    HF_HOME=/models/huggingface \
    VLLM_NO_USAGE_STATS=1
RUN groupadd --system --gid 10001 quantmesh \
 && useradd --system --uid 10001 --gid quantmesh --create-home --home-dir /home/quantmesh \
      --shell /usr/sbin/nologin quantmesh \
 && mkdir -p /models \
 && chown 10001:10001 /models
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python3 -m pip install --no-cache-dir "/wheels/quantmesh-${QUANTMESH_VERSION}-py3-none-any.whl"
COPY --chmod=0555 deploy/docker/grpc_health_check.py /usr/local/bin/quantmesh-grpc-health-check
USER 10001:10001
WORKDIR /home/quantmesh
VOLUME ["/models"]
EXPOSE 50053 9103
ENV HEALTHCHECK_GRPC_ADDRESS=127.0.0.1:50053 \
    HEALTHCHECK_GRPC_SERVICE=quantmesh.worker.v1.InferenceWorkerService
# Loading weights and the golden-prompt check take minutes for large models: a long start period.
HEALTHCHECK --interval=15s --timeout=5s --start-period=600s --retries=3 CMD ["quantmesh-grpc-health-check"]
# The vLLM image's entrypoint is its OpenAI server: replace it with the quantmesh gRPC worker.
ENTRYPOINT []
CMD ["python3", "-m", "services.worker"]
