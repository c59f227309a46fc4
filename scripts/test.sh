#!/usr/bin/env bash
# Installs everything (scripts/install.sh) and runs the test-suite. A build that fails to load the
# extension fails the tests (CROSSNET_FAST_REQUIRE_EXT=1) instead of skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TEST_DEPS=1 bash scripts/install.sh
VENV="${VENV:-.venv}"
export CROSSNET_FAST_REQUIRE_EXT=1
"$VENV/bin/python" -m pytest tests -q "$@"
