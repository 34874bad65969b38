#!/usr/bin/env bash
# `make bench`: run every bench/*_bench.py, even after one misses its budget, then list which
# missed (a benchmark exits non-zero when a budget is not met). Exit 1 when any missed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-.venv/bin/python}
missed=()
passed=()
for bench in bench/*_bench.py; do
  echo "== $bench"
  if "$PY" "$bench"; then passed+=("$bench"); else missed+=("$bench (exit $?)"); fi
done
echo "== make bench: ${#passed[@]} met their budgets, ${#missed[@]} missed"
for m in "${missed[@]}"; do echo "missed: $m"; done
[ "${#missed[@]}" -eq 0 ]
