#!/usr/bin/env bash
# Copy training output (checkpoints, metrics, eval report) to a configured place, under a folder
# named after the commit, so runs never overwrite each other.
# Inputs (environment):
#   LABTAX_CHECKPOINTS   the folder to publish
#   LABTAX_DESTINATION   "" (do nothing) | s3://bucket/prefix (aws s3 sync) |
#                        host:path or rsync://... (rsync -a) | a directory on the runner (cp -a)
#   GITHUB_SHA           names the folder (default: "manual")
set -euo pipefail

src=${LABTAX_CHECKPOINTS:?LABTAX_CHECKPOINTS is required}
dest=${LABTAX_DESTINATION:-}
name=${GITHUB_SHA:-manual}
if [ -z "$dest" ]; then
  echo "ci-publish: no destination configured; checkpoints stay in the run's artifact"
  exit 0
fi
[ -d "$src" ] || { echo "ci-publish: $src is not a directory" >&2; exit 2; }

case "$dest" in
  s3://*)
    aws s3 sync --only-show-errors "$src" "${dest%/}/$name"
    ;;
  rsync://* | *:*)
    rsync -a "$src/" "${dest%/}/$name/"
    ;;
  *)
    target="${dest%/}/$name"
    mkdir -p "$target"
    # state/ is the resumable optimizer state: large and useless once the run finished.
    tar -C "$src" --exclude='./*/state' -cf - . | tar -C "$target" -xf -
    ;;
esac
echo "ci-publish: published $src to ${dest%/}/$name"
output_line="location=${dest%/}/$name"
if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "$output_line" >>"$GITHUB_OUTPUT"; fi
