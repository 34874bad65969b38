#!/usr/bin/env bash
# Turn a GitHub event into the range labtax diffs: prints (and appends to $GITHUB_OUTPUT when set)
#   base=<sha|empty>  head=<sha>  skip=<true|false>  reason=<one line>
# Inputs (environment; the workflow maps the event payload onto them, never into the script text):
#   EVENT_NAME                 github.event_name
#   BEFORE, AFTER              push: github.event.before / github.event.after
#   PR_BASE_SHA, PR_HEAD_SHA   pull_request: github.event.pull_request.base.sha / head.sha
#   PR_MERGED, PR_MERGE_SHA    pull_request (closed): .merged / .merge_commit_sha
# Rules (see docs/ci.md):
#   push, new branch (before is all zeros)          base=empty: every leaf counts as added
#   push, before is an ancestor of after            base=before
#   push, force push (before not an ancestor)       base=merge-base(before, after), else empty
#   push, before not in this clone                  base=empty (every leaf counts as changed; the
#                                                    content-keyed generation cache makes unchanged
#                                                    leaves cost nothing)
#   push deleting a branch (after is all zeros)     skip=true
#   pull_request                                    base=PR base sha, head=PR head (or merge) sha
#   anything else (workflow_dispatch, schedule)     base=empty, head=HEAD
# A shallow clone is an error with the fix (actions/checkout with fetch-depth: 0): it cannot tell
# a force push from a commit it simply does not have.
set -euo pipefail

is_zero() { [[ ${1:-} =~ ^0+$ ]]; }
have_commit() { [ -n "${1:-}" ] && git cat-file -e "$1^{commit}" 2>/dev/null; }

emit() { # base head skip reason
  local line
  for line in "base=$1" "head=$2" "skip=$3" "reason=$4"; do
    printf '%s\n' "$line"
    if [ -n "${GITHUB_OUTPUT:-}" ]; then printf '%s\n' "$line" >>"$GITHUB_OUTPUT"; fi
  done
  exit 0
}

# base to use when `from` should be an ancestor of `to` but may not be (history rewritten)
fork_point() {
  local from=$1 to=$2
  if git merge-base --is-ancestor "$from" "$to"; then
    printf '%s\n' "$from"
  else
    git merge-base "$from" "$to" || echo empty
  fi
}

if [ "$(git rev-parse --is-shallow-repository)" = true ]; then
  echo "ci-diff-range: this clone is shallow, so the changed leaves cannot be computed;" >&2
  echo "  check out with full history: actions/checkout with 'fetch-depth: 0'" >&2
  exit 2
fi

event=${EVENT_NAME:-}
case "$event" in
  push)
    after=${AFTER:-}
    [ -n "$after" ] || after=$(git rev-parse HEAD)
    if is_zero "$after"; then
      emit empty "$after" true "the push deleted the branch: nothing to generate"
    fi
    if ! have_commit "$after"; then
      echo "ci-diff-range: the pushed commit $after is not in this clone" >&2
      exit 2
    fi
    after=$(git rev-parse "$after^{commit}")
    before=${BEFORE:-}
    if [ -z "$before" ] || is_zero "$before"; then
      emit empty "$after" false "new branch: every leaf counts as added"
    fi
    if ! have_commit "$before"; then
      emit empty "$after" false \
        "the previous tip $before is not in the history (force push): every leaf counts as changed; unchanged leaves come from the cache"
    fi
    before=$(git rev-parse "$before^{commit}")
    base=$(fork_point "$before" "$after")
    if [ "$base" = "$before" ]; then
      emit "$base" "$after" false "push: $before..$after"
    elif [ "$base" = empty ]; then
      emit empty "$after" false "force push onto unrelated history: every leaf counts as changed"
    else
      emit "$base" "$after" false "force push: the old tip $before is not an ancestor; diffing from the fork point $base"
    fi
    ;;
  pull_request | pull_request_target)
    base=${PR_BASE_SHA:-}
    if ! have_commit "$base"; then
      echo "ci-diff-range: the pull request's base ${base:-(unset)} is not in this clone" >&2
      exit 2
    fi
    if [ "${PR_MERGED:-false}" = true ] && have_commit "${PR_MERGE_SHA:-}"; then
      head=$(git rev-parse "$PR_MERGE_SHA^{commit}")
      emit "$(fork_point "$base" "$head")" "$head" false "merged pull request"
    fi
    head=${PR_HEAD_SHA:-}
    have_commit "$head" || head=$(git rev-parse HEAD)
    emit "$base" "$head" false "pull request"
    ;;
  *)
    emit empty "$(git rev-parse HEAD)" false "${event:-manual} run: every leaf counts as changed; unchanged leaves come from the cache"
    ;;
esac
