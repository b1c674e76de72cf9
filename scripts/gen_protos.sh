#!/usr/bin/env bash
# Generates the Python messages, gRPC stubs and .pyi stubs for protos/ into quantmesh/ (imports mirror the proto
# packages: quantmesh.<domain>.v1.<file>_pb2). Run through `make protos`; CI re-runs it and fails on a diff.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
find quantmesh -name '*_pb2*.py*' -delete 2>/dev/null || true
mapfile -t files < <(cd protos && find quantmesh -name '*.proto' | sort)
(cd protos && PATH="$(cd .. && dirname "$(realpath -s "$PY")"):$PATH" "../$PY" -m grpc_tools.protoc -I. \
  --python_out=.. --grpc_python_out=.. --mypy_out=.. --mypy_grpc_out=.. "${files[@]}")
# Every directory on the way is a regular package, so `import quantmesh.worker.v1.worker_pb2` works installed.
for f in "${files[@]}"; do
  d=$(dirname "$f")
  while [ "$d" != "." ]; do
    [ -f "$d/__init__.py" ] || : > "$d/__init__.py"
    d=$(dirname "$d")
  done
done
touch quantmesh/py.typed
