#!/usr/bin/env bash
# The main job: installs everything (scripts/install.sh), then runs `crossnet-fast` with the given
# arguments; with none, the default job on a small embedded example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh >&2
VENV="${VENV:-.venv}"
if [ "$#" -eq 0 ]; then
  set -- demo
fi
exec "$VENV/bin/crossnet-fast" "$@"
