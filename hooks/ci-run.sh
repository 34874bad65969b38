#!/usr/bin/env bash
# The composite action's main step: build one labtax command line from the action's inputs and run
# it, keeping its exit code (also written to $GITHUB_OUTPUT as exit-code=N).
# Inputs (environment):
#   LABTAX_COMMAND   validate | diff | diff-generate | any other labtax command | install (nothing)
#   LABTAX_BASE      a ref, "empty" (the whole tree), or "" (the command's default)
#   LABTAX_HEAD      a ref or ""
#   LABTAX_FORMAT    output format for validate, diff, eval ("" = the command's default)
#   LABTAX_ARGS      extra arguments, split on whitespace (they come from workflow files, not users)
#   LABTAX_CONFIG_REF  validate: read .labtax.yaml as committed there (a pull request's base), so
#                    the change under review cannot relax the policy it is checked against
#   LABTAX_SKIP      "true": print LABTAX_SKIP_REASON and do nothing
#   LABTAX           the labtax program (default: labtax on PATH)
set -euo pipefail
# LABTAX="python -m labtax" runs in the taxonomy checkout: never import a module from there (>= 3.11).
export PYTHONSAFEPATH=1

cmd=${LABTAX_COMMAND:-validate}
base=${LABTAX_BASE:-}
head=${LABTAX_HEAD:-}
format=${LABTAX_FORMAT:-}
read -r -a labtax <<<"${LABTAX:-labtax}"
read -r -a extra <<<"${LABTAX_ARGS:-}"

output() { if [ -n "${GITHUB_OUTPUT:-}" ]; then printf '%s\n' "$1" >>"$GITHUB_OUTPUT"; fi; }

if [ "${LABTAX_SKIP:-false}" = true ]; then
  echo "labtax $cmd: skipped: ${LABTAX_SKIP_REASON:-nothing to do}"
  output "exit-code=0"
  exit 0
fi

args=("$cmd")
case "$cmd" in
  install | none)
    output "exit-code=0"
    exit 0
    ;;
  validate)
    # validate checks the working tree; --changed limits it to the leaves changed since base.
    if [ -n "$base" ] && [ "$base" != empty ]; then args+=(--changed --base "$base"); fi
    if [ -n "${LABTAX_CONFIG_REF:-}" ]; then args+=(--config-ref "$LABTAX_CONFIG_REF"); fi
    ;;
  diff | diff-generate)
    if [ -n "$base" ]; then args+=(--base "$base"); fi
    if [ -n "$head" ]; then args+=(--head "$head"); fi
    ;;
esac
# Pass the format only where the command has it (the action's default, github, is validate's).
case "$cmd:$format" in
  validate:?* | diff:text | diff:json | eval:text | eval:json | eval:markdown) args+=(--format "$format") ;;
esac
args+=("${extra[@]}")

echo "::group::labtax ${args[*]}" >&2
echo "+ labtax ${args[*]}" >&2
echo "::endgroup::" >&2
rc=0
case "$cmd" in
  diff | diff-generate | generate)
    # Their text output (changed leaves; generated/reused/dropped counts) also goes to the job
    # summary, so a run's page says what it did. validate and eval write their own summaries.
    log=$(mktemp)
    "${labtax[@]}" "${args[@]}" 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
    if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
      {
        echo "### labtax $cmd (exit $rc)"
        echo
        echo '```text'
        tail -n 200 "$log"
        echo '```'
      } >>"$GITHUB_STEP_SUMMARY"
    fi
    rm -f "$log"
    ;;
  *)
    "${labtax[@]}" "${args[@]}" || rc=$?
    ;;
esac
output "exit-code=$rc"
exit "$rc"
