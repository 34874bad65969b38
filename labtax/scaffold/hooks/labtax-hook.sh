#!/usr/bin/env bash
# labtax-hook: a plain git hook, installed by `labtax install-hooks` as pre-commit and pre-push.
# It validates the taxonomy leaves (qna.yaml, attribution.txt) that a commit or a push changes:
#   pre-commit  the staged leaves;
#   pre-push    the leaves changed by the commits being pushed (stdin: local ref, local sha,
#               remote ref, remote sha per line).
# labtax is looked up as: $LABTAX (a path or a command, e.g. "python -m labtax"), then `labtax` on
# PATH, then the path `labtax install-hooks` recorded (git config labtax.command).
# Set LABTAX_TAXONOMY=DIR when the taxonomy is not at the top of the repository.
# Skip once: git commit --no-verify / git push --no-verify.
set -euo pipefail
# LABTAX="python -m labtax" runs inside the repository: never import a module from there (python >= 3.11).
export PYTHONSAFEPATH=1

hook=$(basename "$0")
say() { printf 'labtax %s: %s\n' "$hook" "$*" >&2; }

find_labtax() {
  if [ -n "${LABTAX:-}" ]; then
    printf '%s\n' "$LABTAX"
    return 0
  fi
  if command -v labtax >/dev/null 2>&1; then
    command -v labtax
    return 0
  fi
  local recorded
  recorded=$(git config --get labtax.command || true)
  if [ -n "$recorded" ] && [ -x "$recorded" ]; then
    printf '%s\n' "$recorded"
    return 0
  fi
  return 1
}

if ! labtax_cmd=$(find_labtax); then
  say "labtax is not installed or not on PATH, so the taxonomy cannot be validated."
  say "  install it:      pip install labtax        (or activate the virtualenv that has it)"
  say "  or point to it:  export LABTAX=/path/to/venv/bin/labtax"
  say "  skip this once:  git ${hook#pre-} --no-verify"
  exit 1
fi
read -r -a LABTAX_ARGV <<<"$labtax_cmd"
if ! command -v "${LABTAX_ARGV[0]}" >/dev/null 2>&1; then
  say "LABTAX=$labtax_cmd does not name a program that can be run; fix it or unset LABTAX."
  exit 1
fi

# Reads NUL-separated paths on stdin; prints, NUL-separated and once each, the qna.yaml files they
# stand for (an attribution.txt stands for the qna.yaml beside it) and that exist in $1: a folder on
# disk, or `commit:SHA` for a commit's tree.
leaf_files() {
  local where=$1 path leaf
  declare -A seen=()
  while IFS= read -r -d '' path; do
    case "$path" in
      qna.yaml | */qna.yaml) leaf=$path ;;
      attribution.txt) leaf=qna.yaml ;;
      */attribution.txt) leaf=${path%/attribution.txt}/qna.yaml ;;
      *) continue ;;
    esac
    # An attribution.txt of a deleted leaf: nothing left to check.
    case "$where" in
      commit:*) git cat-file -e "${where#commit:}:$leaf" 2>/dev/null || continue ;;
      *) [ -e "$where/$leaf" ] || continue ;;
    esac
    if [ -z "${seen[$leaf]:-}" ]; then
      seen[$leaf]=1
      printf '%s\0' "$leaf"
    fi
  done
}

# validate DIR FILE...: run labtax in DIR on the files; explain how to proceed when it fails.
validate() {
  local dir=$1
  shift
  local taxonomy=()
  [ -n "${LABTAX_TAXONOMY:-}" ] && taxonomy=(--taxonomy "$LABTAX_TAXONOMY")
  local rc=0
  (cd "$dir" && "${LABTAX_ARGV[@]}" validate "${taxonomy[@]}" -- "$@") || rc=$?
  if [ "$rc" -ne 0 ]; then
    say "blocked: labtax validate found problems (exit $rc) in the leaves above."
    say "fix them and try again, or skip this check once with: git ${hook#pre-} --no-verify"
  fi
  return "$rc"
}

pre_commit() {
  local files=()
  mapfile -d '' files < <(git diff --cached --name-only --diff-filter=ACMR -z | leaf_files .)
  [ "${#files[@]}" -eq 0 ] && return 0
  # labtax reads the files on disk: if they differ from what is staged, the check would not be
  # about what is committed, so stop rather than pass or fail on the wrong content.
  local unstaged=()
  mapfile -d '' unstaged < <(git diff --name-only -z -- "${files[@]}" \
    "${files[@]/%qna.yaml/attribution.txt}")
  if [ "${#unstaged[@]}" -gt 0 ]; then
    say "these leaf files have changes that are not staged: ${unstaged[*]}"
    say "stage them (git add) or set them aside (git stash --keep-index), then commit again."
    return 1
  fi
  validate . "${files[@]}"
}

is_zero() { [[ $1 =~ ^0+$ ]]; }

# The base to diff a pushed commit against: the remote's old tip when it is an ancestor; for a new
# branch, the parent of the oldest commit no remote-tracking branch of this remote has (or "empty");
# for a force push, the fork point of the old and new tips.
push_base() {
  local remote=$1 local_sha=$2 remote_sha=$3 first
  if ! is_zero "$remote_sha" && git cat-file -e "$remote_sha^{commit}" 2>/dev/null; then
    if git merge-base --is-ancestor "$remote_sha" "$local_sha"; then
      printf '%s\n' "$remote_sha"
    else
      git merge-base "$remote_sha" "$local_sha" || echo empty
    fi
    return 0
  fi
  first=$(git rev-list --reverse --topo-order "$local_sha" --not --remotes="$remote" | head -n 1)
  if [ -z "$first" ]; then
    echo none # every commit is already on the remote
  elif git rev-parse -q --verify "$first^" >/dev/null; then
    git rev-parse "$first^"
  else
    echo empty
  fi
}

pre_push() {
  local remote=$1 local_ref local_sha remote_ref remote_sha base rc=0
  local head
  head=$(git rev-parse -q --verify HEAD || true)
  while read -r local_ref local_sha remote_ref remote_sha; do
    is_zero "$local_sha" && continue # deleting a remote branch
    base=$(push_base "$remote" "$local_sha" "$remote_sha")
    [ "$base" = none ] && continue
    local files=()
    if [ "$base" = empty ]; then
      mapfile -d '' files < <(git ls-tree -r -z --name-only "$local_sha" | leaf_files "commit:$local_sha")
    else
      mapfile -d '' files < <(git diff --name-only -z --diff-filter=ACMR "$base" "$local_sha" \
        | leaf_files "commit:$local_sha")
    fi
    [ "${#files[@]}" -eq 0 ] && continue
    say "$local_ref -> $remote_ref: validating ${#files[@]} changed leaf file(s)"
    if [ "$local_sha" = "$head" ] && git diff --quiet HEAD -- "${files[@]}"; then
      validate . "${files[@]}" || rc=1
    else
      # The pushed commit is not what is on disk: check it out on the side and validate that.
      validate_commit "$local_sha" "${files[@]}" || rc=1
    fi
  done
  return "$rc"
}

validate_commit() {
  local commit=$1
  shift
  local tmp rc=0
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/labtax-pre-push.XXXXXX")
  git worktree add --detach -q "$tmp/tree" "$commit"
  (unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE && validate "$tmp/tree" "$@") || rc=$?
  git worktree remove --force "$tmp/tree" || true
  rm -rf "$tmp"
  return "$rc"
}

case "$hook" in
  pre-commit) pre_commit ;;
  pre-push) pre_push "${1:-origin}" ;;
  *)
    say "installed under an unknown name; install it as pre-commit or pre-push"
    exit 2
    ;;
esac
