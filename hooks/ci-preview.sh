#!/usr/bin/env bash
# The pull-request preview step: generate a few samples for every leaf the pull request adds or
# changes, with the embedded teacher (in process: no secret, no GPU, no network), and put them with
# their verdicts in the job summary. Generation is kept small on purpose: one first-stage request
# per leaf; the judges' calibration and verdicts run as for a real generation.
# Inputs (environment):
#   LABTAX_BASE      the pull request's base commit (required)
#   LABTAX_HEAD      its head commit (default HEAD)
#   LABTAX_OUTPUT    where the samples go (default: $RUNNER_TEMP or /tmp, then labtax-preview)
#   LABTAX_PREVIEW_MODEL    the embedded teacher's model (default embedded; embedded-small is the
#                           small fallback)
#   LABTAX_PREVIEW_SAMPLES  samples kept per leaf at most (default 3)
#   LABTAX_ARGS      extra labtax generate arguments (from the workflow file)
#   LABTAX / LABTAX_PYTHON  the labtax program and its python (default: on PATH)
# Exit code: labtax generate's (0 when there is nothing to preview). The summary is written either way.
set -euo pipefail
# No Python start here imports from the working directory (a pull request's checkout: its committed
# labtax/, json.py or pip/ would run as code): PYTHONSAFEPATH for python >= 3.11 and every child
# (torchrun workers, LABTAX="python -m labtax"), and -I or a neutral directory for the starts
# written here, which also holds on 3.10.
export PYTHONSAFEPATH=1
base=${LABTAX_BASE:?LABTAX_BASE (the pull request base) is required}
head=${LABTAX_HEAD:-HEAD}
out=${LABTAX_OUTPUT:-${RUNNER_TEMP:-/tmp}/labtax-preview}
model=${LABTAX_PREVIEW_MODEL:-embedded}
samples=${LABTAX_PREVIEW_SAMPLES:-3}
read -r -a labtax <<<"${LABTAX:-labtax}"
read -r -a extra <<<"${LABTAX_ARGS:-}"
python=${LABTAX_PYTHON:-python}
summary=${GITHUB_STEP_SUMMARY:-/dev/stdout}
case $out in /*) ;; *) out=$PWD/$out ;; esac
# The summary renderer starts in / (nothing of the checkout on its import path), with $out absolute.
preview() { (cd / && "$python" -m labtax.sdg.preview "$out"); }
export PYTHONUNBUFFERED=1

# Added or modified leaves that still exist at head (a deleted leaf teaches nothing).
leaves=()
while IFS= read -r -d '' path; do
  leaves+=("$path")
done < <(git diff -z --name-only --diff-filter=AMR "$base...$head" -- 'qna.yaml' '*/qna.yaml')
rm -rf "$out"
if [ "${#leaves[@]}" -eq 0 ]; then
  echo "labtax preview: no leaf changed between ${base:0:12} and ${head:0:12}"
  preview >>"$summary"
  exit 0
fi
echo "labtax preview: ${#leaves[@]} changed leaf/leaves, teacher embedded ($model)"
rc=0
"${labtax[@]}" generate "${leaves[@]}" --output "$out" --teacher embedded --model "$model" \
  --samples-per-leaf "$samples" --max-requests-per-leaf 1 --questions-per-request 3 --max-tokens 256 \
  "${extra[@]}" || rc=$?
preview >>"$summary"
exit "$rc"
