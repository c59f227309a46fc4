#!/usr/bin/env bash
# Lint and format checks: ruff (lint rules and formatting; config in pyproject.toml) for Python and
# clang-format (.clang-format) for csrc/. Check mode by default; exit status 1 on any finding.
#
#   bash scripts/lint.sh            # check: ruff check, ruff format --check, clang-format --dry-run
#   FIX=1 bash scripts/lint.sh      # rewrite in place: ruff check --fix, ruff format, clang-format -i
#   bash scripts/lint.sh PATH...    # only these Python files/folders (csrc/ is checked only without PATHs)
#
# Pinned tool versions (formatting differs between versions), installed into $VENV (default .venv,
# created when missing) when absent or different.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
RUFF_VERSION=0.17.5
CLANG_FORMAT_VERSION=23.1.3

if [ ! -x "$VENV/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$VENV"
fi
need=()
"$VENV/bin/ruff" --version 2>/dev/null | grep -qx "ruff $RUFF_VERSION" || need+=("ruff==$RUFF_VERSION")
"$VENV/bin/clang-format" --version 2>/dev/null | grep -q "version $CLANG_FORMAT_VERSION\b" \
  || need+=("clang-format==$CLANG_FORMAT_VERSION")
if [ "${#need[@]}" -gt 0 ]; then
  echo "lint: installing ${need[*]} into $VENV"
  "$VENV/bin/python" -m pip install -q "${need[@]}" 2>&1 | grep -v "^WARNING: Location" || true
fi
RUFF="$VENV/bin/ruff"
CLANG_FORMAT="$VENV/bin/clang-format"

py_paths=("$@")
[ "${#py_paths[@]}" -gt 0 ] || py_paths=(.)
c_files=()
if [ "$#" -eq 0 ]; then
  mapfile -t c_files < <(find csrc -type f \( -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' \) | sort)
fi

status=0
if [ "${FIX:-0}" = "1" ]; then
  "$RUFF" check --fix "${py_paths[@]}" || status=1   # what --fix cannot fix is still reported
  "$RUFF" format "${py_paths[@]}" || status=1
  [ "${#c_files[@]}" -eq 0 ] || "$CLANG_FORMAT" -i "${c_files[@]}" || status=1
else
  echo "=== ruff check (lint)"
  "$RUFF" check "${py_paths[@]}" || status=1
  echo "=== ruff format --check"
  "$RUFF" format --check "${py_paths[@]}" || status=1
  if [ "${#c_files[@]}" -gt 0 ]; then
    echo "=== clang-format --dry-run (${#c_files[@]} files under csrc/)"
    "$CLANG_FORMAT" --dry-run --Werror "${c_files[@]}" || status=1
  fi
fi
echo "lint: $([ "$status" -eq 0 ] && echo OK || echo "FAILED (FIX=1 bash scripts/lint.sh rewrites what can be rewritten)")"
exit "$status"
