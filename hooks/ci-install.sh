#!/usr/bin/env bash
# Install labtax into its own virtualenv and put it on PATH for the following steps.
# Inputs (environment):
#   LABTAX_VERSION   ""          install from LABTAX_SOURCE (the action's own checkout)
#                    "installed" use the labtax already on PATH (nothing is installed)
#                    "0.1.0"     that release from the package index
#                    other       any pip requirement (a URL, a path, "labtax>=0.1")
#   LABTAX_SOURCE    the source tree for the "" case
#   LABTAX_EXTRAS    pip extras, e.g. "sdg" or "sdg,train" ("" = validate/diff only)
#   LABTAX_TORCH_INDEX  when set and extras are asked for: install torch from that index first
#                    (GitHub's hosted runners have no GPU: https://download.pytorch.org/whl/cpu)
#   LABTAX_VENV      the virtualenv to create (default: $RUNNER_TEMP/labtax-venv)
#   PYTHON           the interpreter to build it with (default: python3)
set -euo pipefail
# No Python start here imports from the working directory (a pull request's checkout: its committed
# labtax/, json.py or pip/ would run as code): PYTHONSAFEPATH for python >= 3.11 and every child
# (torchrun workers, LABTAX="python -m labtax"), and -I or a neutral directory for the starts
# written here, which also holds on 3.10.
export PYTHONSAFEPATH=1

version=${LABTAX_VERSION:-}
if [ "$version" = installed ]; then
  command -v labtax >/dev/null || { echo "ci-install: version 'installed' but labtax is not on PATH" >&2; exit 2; }
  labtax --version
  exit 0
fi

venv=${LABTAX_VENV:-${RUNNER_TEMP:-/tmp}/labtax-venv}
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -I -m venv "$venv"
pip() { "$venv/bin/python" -I -m pip --disable-pip-version-check -q "$@"; }

extras=${LABTAX_EXTRAS:-}
suffix=""
if [ -n "$extras" ]; then
  suffix="[$extras]"
  if [ -n "${LABTAX_TORCH_INDEX:-}" ]; then pip install --index-url "$LABTAX_TORCH_INDEX" torch; fi
fi

if [ -z "$version" ]; then
  pip install "${LABTAX_SOURCE:?LABTAX_SOURCE is required when no version is given}$suffix"
elif [[ $version =~ ^v?[0-9]+(\.[0-9]+)*([a-z]+[0-9]*)?$ ]]; then
  pip install "labtax$suffix==${version#v}"
else
  pip install "$version"
fi

if [ -n "${GITHUB_PATH:-}" ]; then echo "$venv/bin" >>"$GITHUB_PATH"; fi
"$venv/bin/labtax" --version
