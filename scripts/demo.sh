#!/usr/bin/env bash
# `make demo`: the whole LAB method on examples/taxonomy, offline, on a CPU: the embedded teacher
# (Qwen2.5-Coder-1.5B-Instruct, in process) generates, a pretrained student (SmolLM2-135M,
# `embedded-small`) trains, and the eval compares it per leaf with where it started. Under demo-out/:
#   demo-out/taxonomy/    a git repository: commit 1 = every leaf but one, commit 2 adds the new one
#                         (examples' made-up-facts knowledge leaf, brindle_glassworks: no base model can
#                         know its facts, so closed-book accuracy before -> after shows what was learned)
#   demo-out/generated/   training sets, manifest, leaf store and ledger (labtax diff-generate)
#   demo-out/train/       checkpoints per phase (labtax train)
#   demo-out/eval.md      per-leaf table, base model vs the trained checkpoint (labtax eval)
#   demo-out/demo.log     this run's full output
# A second run is fast: the taxonomy is unchanged, so diff-generate has nothing to generate, and
# training and eval are skipped while their inputs (stamped in demo-out/.stamps/) are unchanged.
# DEMO_FAST=1: a two-minute plumbing run instead (teacher embedded-small, student tiny).
# Knobs (environment): DEMO_SAMPLES (per leaf), DEMO_MAX_TOKENS, DEMO_TEACHER_MODEL, DEMO_MODEL
# (the student: embedded-small|tiny|DIR), DEMO_MAX_STEPS (a cap on every phase; default none),
# DEMO_TRAIN_ARGS, DEMO_GEN_ARGS, DEMO_OUT, DEMO_FRESH=1 (start over), DEMO_UNTIL=generate|train (stop
# after that step: a profile of the generation alone, say).
# DEMO_NOISE=0: no seed-noise floor. By default the old student's phase 2 is trained again with
# another data order and evaluated against the old student, and the gate takes that as its noise
# floor (a few minutes more; docs/eval.md).
# Your own taxonomy: DEMO_SRC=DIR (its leaves; .documents/ left out), DEMO_NEW_LEAF=PATH (the leaf
# folder commit 2 adds, relative to DEMO_SRC; default: the examples' made-up-facts knowledge leaf,
# else the last compositional skill leaf), DEMO_DOCUMENTS=DIR (one folder per document repository,
# built into DIR's .documents/<name> and pinned by the knowledge leaves' document.commit, as
# examples/make_document_repo.py does; default examples/documents; "none" for leaves whose
# documents are elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# Every line shows when it happens: python does not buffer into the pipes below, sed -u neither.
export PYTHONUNBUFFERED=1

FAST=${DEMO_FAST:-0}
if [ "$FAST" = 1 ]; then
  TEACHER_MODEL=${DEMO_TEACHER_MODEL:-embedded-small}
  MODEL=${DEMO_MODEL:-tiny}
  SAMPLES=${DEMO_SAMPLES:-2}
  MAX_TOKENS=${DEMO_MAX_TOKENS:-128}
  MAX_STEPS=${DEMO_MAX_STEPS:-8}
  default_gen_args="--max-requests-per-leaf 1 --questions-per-request 4 --chunk-tokens 160 --calibration-examples 3"
else
  TEACHER_MODEL=${DEMO_TEACHER_MODEL:-embedded}
  MODEL=${DEMO_MODEL:-embedded-small}
  SAMPLES=${DEMO_SAMPLES:-4}
  MAX_TOKENS=${DEMO_MAX_TOKENS:-160}
  MAX_STEPS=${DEMO_MAX_STEPS:-0}
  # A 1.5B teacher on two CPU cores: at most twelve first-stage requests per leaf (a skill leaf asks
  # five or six for its 4 samples; a knowledge leaf one per 128-token chunk first, so every chunk of a
  # ~500-word document is asked about: at four, a 9-chunk document was asked about 3 chunks and 8 of
  # its facts), three candidate questions or four Q&A pairs a request, 160 tokens (four Q&A pairs fit),
  # three calibration examples a side; the batch width is the one measured on this machine (cached
  # beside the weights), narrowed to keep the KV cache in its 1 GiB budget. Its verdicts are single
  # forward passes with a shared prompt prefix computed once; its writing is what costs (docs/sdg.md).
  # The new leaf is a knowledge leaf: labtax's default two wordings per fact (one held out for the
  # closed-book eval, one trained: a second trained wording did not store more, bench/learning_bench.py);
  # a fact the teacher wrote once gets its second wording from a short reword request.
  default_gen_args="--max-requests-per-leaf 12 --questions-per-request 3 --chunk-tokens 128 --calibration-examples 3"
fi
GEN_ARGS=${DEMO_GEN_ARGS-$default_gen_args}
# The pretrained 135M student trains with labtax's defaults (defaults.yaml): phase 1 at the small-
# student rate (1e-4, cosine) for the epochs that show each fact ~24 times (bench/learning_bench.py,
# docs/train.md); phase 2 as scripts/demo-train.yaml says (a few generated samples per skill leaf:
# two epochs of steps of 4 at 2e-5, at most 24 steps; demo-train.yaml says how it was measured). No
# resumable optimizer state (3x the model per checkpoint). The random tiny model needs a much higher
# rate to move at all.
case "$MODEL" in
  tiny) default_train_args="--lr 3e-3 --warmup-steps 1 --schedule constant" ;;
  *) default_train_args="--config $ROOT/scripts/demo-train.yaml" ;;
esac
TRAIN_ARGS=${DEMO_TRAIN_ARGS-$default_train_args}
OUT=${DEMO_OUT:-$ROOT/demo-out}
TAX=$OUT/taxonomy
GEN=$OUT/generated
TRAIN=$OUT/train
BEFORE=$OUT/sets-before   # commit 1's training sets (every leaf but the new one)
STAMPS=$OUT/.stamps
# The virtualenv scripts/bootstrap.sh builds (it reads the same LABTAX_VENV), as an absolute path.
VENV=$(realpath -m "${LABTAX_VENV:-.venv}")
LABTAX=$VENV/bin/labtax

[ "${DEMO_FRESH:-0}" = 1 ] && rm -rf "$OUT"
mkdir -p "$OUT" "$STAMPS"
exec > >(tee "$OUT/demo.log") 2>&1

# Fixed identity and dates: the demo repository gets the same commit SHAs on every machine.
export GIT_AUTHOR_NAME="labtax demo" GIT_AUTHOR_EMAIL="demo@labtax.invalid"
export GIT_COMMITTER_NAME="labtax demo" GIT_COMMITTER_EMAIL="demo@labtax.invalid"
export GIT_AUTHOR_DATE="2026-01-01T00:00:00+00:00" GIT_COMMITTER_DATE="2026-01-01T00:00:00+00:00"
export GIT_CONFIG_NOSYSTEM=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

T0=$(date +%s)
TIMINGS=()
step() { # step NAME: start a timed step
  STEP_NAME=$1
  STEP_T0=$(date +%s)
  printf '\n\033[1m== %s\033[0m\n' "$1"
}
done_step() { # done_step NOTE
  local secs=$(($(date +%s) - STEP_T0))
  TIMINGS+=("$(printf '%-28s %5ss  %s' "$STEP_NAME" "$secs" "${1:-}")")
}
say() { printf '   %s\n' "$*"; }
fingerprint() { # sha256 of the given files' names and contents
  local f
  for f in "$@"; do
    if [ -f "$f" ]; then printf '%s\n' "$f" && sha256sum <"$f"; fi
  done | sha256sum | cut -d' ' -f1
}

# ---------------------------------------------------------------- 1. install
step "install ($VENV)"
if [ "$TEACHER_MODEL" = embedded ]; then
  bash scripts/bootstrap.sh --with-teacher # + the 1.5B teacher's 22 pinned weight parts (1.09 GB)
else
  bash scripts/bootstrap.sh
fi
"$LABTAX" --version
done_step

# ---------------------------------------------------------------- 2. the taxonomy repository
step "taxonomy repo (2 commits)"
SRC=${DEMO_SRC:-$ROOT/examples/taxonomy}
[ -d "$SRC" ] || { echo "demo: $SRC is missing" >&2; exit 2; }
src_files=()
mapfile -t src_files < <(cd "$SRC" && find . -path ./.documents -prune -o -type f -print | LC_ALL=C sort)
doc_files=()
DOCS=${DEMO_DOCUMENTS:-$ROOT/examples/documents}
[ "$DOCS" = none ] || [ -d "$DOCS" ] || { echo "demo: DEMO_DOCUMENTS=$DOCS is missing" >&2; exit 2; }
mapfile -t doc_files < <([ "$DOCS" = none ] || find "$DOCS" -type f 2>/dev/null | LC_ALL=C sort)
# The leaf commit 2 adds: DEMO_NEW_LEAF, else the examples' made-up-facts knowledge leaf, else the last
# compositional skill leaf in sorted order.
NEW_LEAF=${DEMO_NEW_LEAF:-}
if [ -z "$NEW_LEAF" ] && [ -f "$SRC/knowledge/history/industry/brindle_glassworks/qna.yaml" ]; then
  NEW_LEAF=knowledge/history/industry/brindle_glassworks
fi
if [ -z "$NEW_LEAF" ]; then
  NEW_LEAF=$(cd "$SRC" && find compositional_skills -name qna.yaml 2>/dev/null | LC_ALL=C sort | tail -n 1)
  NEW_LEAF=${NEW_LEAF%/qna.yaml}
fi
NEW_LEAF=${NEW_LEAF%/}
NEW_LEAF=${NEW_LEAF%/qna.yaml}
[ -n "$NEW_LEAF" ] && [ -f "$SRC/$NEW_LEAF/qna.yaml" ] || { echo "demo: no leaf $SRC/${NEW_LEAF:-?}/qna.yaml to add in commit 2 (set DEMO_NEW_LEAF)" >&2; exit 2; }
want=$(cd "$SRC" && fingerprint "${src_files[@]}" "$ROOT/scripts/demo.sh" "$ROOT/examples/make_document_repo.py" \
  "${doc_files[@]}"; echo "$NEW_LEAF $DOCS")
if [ -d "$TAX/.git" ] && [ "$(cat "$STAMPS/taxonomy" 2>/dev/null)" = "$want" ]; then
  say "unchanged since the last run: reusing $TAX"
  done_step "reused"
else
  rm -rf "$TAX" "$STAMPS/generated-at"
  mkdir -p "$TAX"
  git -C "$TAX" init -q -b main
  echo ".documents/" >>"$TAX/.git/info/exclude" # document repos: referenced by path, not committed
  (cd "$SRC" && tar -cf - "${src_files[@]}") | tar -C "$TAX" -xf -
  last=$NEW_LEAF
  rm -rf "$OUT/held-back"
  mv "$TAX/$last" "$OUT/held-back"
  # The knowledge leaves' document repositories (deterministic SHAs), made by the example's script.
  # --check: each SHA must be the one a knowledge leaf pins in document.commit.
  if [ "$DOCS" != none ]; then
    "$VENV/bin/python" examples/make_document_repo.py --documents "$DOCS" --taxonomy "$SRC" --dest "$TAX/.documents" \
      --check | sed 's/^/   document repo: /'
  fi
  git -C "$TAX" add -A
  git -C "$TAX" commit -q -m "taxonomy: every leaf but $last"
  mkdir -p "$(dirname "$TAX/$last")"
  mv "$OUT/held-back" "$TAX/$last"
  git -C "$TAX" add -A
  git -C "$TAX" commit -q -m "taxonomy: add $last"
  echo "$want" >"$STAMPS/taxonomy"
  done_step "built"
fi
C1=$(git -C "$TAX" rev-parse HEAD~1)
C2=$(git -C "$TAX" rev-parse HEAD)
git -C "$TAX" log --oneline | sed -u 's/^/   /'

# ---------------------------------------------------------------- 3. validate
step "labtax validate"
(cd "$TAX" && "$LABTAX" validate) | sed -u 's/^/   /'
done_step "whole taxonomy"

# ---------------------------------------------------------------- 4. diff
step "labtax diff HEAD~1..HEAD"
(cd "$TAX" && "$LABTAX" diff --base "$C1" --head "$C2") | sed -u 's/^/   /'
done_step "the leaf commit 2 adds"

# ---------------------------------------------------------------- 5. diff-generate
# Generation resumes from the last generated commit: the first run does commit 1 (every leaf
# added), then commit 1..2 (only the new leaf); a later run finds nothing to generate.
generate() { # generate BASE HEAD
  local gen_args=()
  read -r -a gen_args <<<"$GEN_ARGS"
  say "labtax diff-generate --base $1 --head $2 --teacher embedded --model $TEACHER_MODEL --samples-per-leaf $SAMPLES --max-tokens $MAX_TOKENS $GEN_ARGS"
  (cd "$TAX" && "$LABTAX" diff-generate --taxonomy . --base "$1" --head "$2" --output "$GEN" \
    --teacher embedded --model "$TEACHER_MODEL" --samples-per-leaf "$SAMPLES" --seed 42 \
    --max-tokens "$MAX_TOKENS" --verbose "${gen_args[@]}") 2>&1 | sed -u 's/^/   /'
  echo "$2" >"$STAMPS/generated-at"
}
step "labtax diff-generate"
from=$(cat "$STAMPS/generated-at" 2>/dev/null || true)
git -C "$TAX" cat-file -e "${from:-none}^{commit}" 2>/dev/null || from=""
if [ -z "$from" ]; then
  generate empty "$C1"
  from=$C1
  # The sets as they stood before the new leaf: the student trained on them is what the new leaf's
  # training is compared with (step 7).
  rm -rf "$BEFORE" && mkdir -p "$BEFORE"
  cp "$GEN"/*.jsonl "$GEN/manifest.json" "$BEFORE/"
fi
# Already generated at commit 2 (a rerun): nothing to do. A diff-generate of C2..C2 would rewrite the
# manifest with no leaf changed, and the eval would then not treat the new leaf as the changed one.
[ "$from" = "$C2" ] || generate "$from" "$C2"
done_step "$(wc -l <"$GEN/phase1_knowledge.jsonl") knowledge, $(wc -l <"$GEN/phase2_skills.jsonl") skills, $(wc -l <"$GEN/test.jsonl") test samples"
until_here() { # until_here STEP: stop after STEP when DEMO_UNTIL names it
  [ "${DEMO_UNTIL:-}" = "$1" ] || return 0
  printf '   %s\n' "${TIMINGS[@]}"
  say "DEMO_UNTIL=$1: stopping here"
  exit 0
}
until_here generate

# ---------------------------------------------------------------- 6. train
# Two students, the same recipe from the same start: one on commit 1's sets (before the new leaf),
# one on commit 2's (with it). The eval compares them: the new leaf's data should make its leaf
# better, and the other leaves, trained on the same data in both, should not get worse. (Compared
# with the untrained student instead, every leaf moves, since every leaf's data is trained on.)
phases() { # phases DIR: which phases have data ("none" when both sets are empty)
  local k s
  k=$(wc -l <"$1/phase1_knowledge.jsonl"); s=$(wc -l <"$1/phase2_skills.jsonl")
  if [ "$k" -eq 0 ] && [ "$s" -eq 0 ]; then echo none
  elif [ "$k" -eq 0 ]; then echo skills
  elif [ "$s" -eq 0 ]; then echo knowledge
  else echo all; fi
}
selected() { # selected RESULT_JSON: the checkpoint `labtax train` chose in that phase
  "$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["selected"]["path"])' "$1"
}
train_one() { # train_one NAME DATA OUTDIR: train (or reuse) one student; prints its checkpoint path
  local name=$1 data=$2 out=$3 phase last key
  phase=$(phases "$data")
  last=skills; [ "$phase" = knowledge ] && last=knowledge
  [ "$phase" = none ] && return 0
  key=$({ fingerprint "$data/phase1_knowledge.jsonl" "$data/phase2_skills.jsonl" "$data/test.jsonl"
    cat "$ROOT/scripts/demo-train.yaml"; echo "$MODEL $MAX_STEPS $phase $TRAIN_ARGS"; } | sha256sum | cut -d' ' -f1)
  if [ -f "$out/$last/result.json" ] && [ "$(cat "$STAMPS/train-$name" 2>/dev/null)" = "$key" ]; then
    say "$name: inputs unchanged since the last run (stamp $STAMPS/train-$name): skipped" >&2
  else
    rm -rf "$out" "$STAMPS/train-$name"
    read -r -a train_args <<<"$TRAIN_ARGS"
    # A cap only when asked for: a flag would also override the skills phase's own cap (demo-train.yaml).
    [ "$MAX_STEPS" != 0 ] && train_args+=(--max-steps "$MAX_STEPS")
    # Both students keep their last checkpoint: the two epochs of skills each was given. At the demo's
    # sizes validation.jsonl holds ~5 skill rows, and choosing by their loss picked phase 2's first
    # epoch for one student and its second for the other on a difference of 0.0002 nats, a
    # comparison of unequal training that failed the gate by 12 % on a skill leaf (docs/train.md,
    # *Keeping the skills*); on test.jsonl it would let the gate's own items pick what they grade.
    train_args+=(--select last)
    say "$name: labtax train --data $data --model $MODEL --phase $phase ${train_args[*]}" >&2
    "$LABTAX" train --data "$data" --model "$MODEL" --output "$out" --phase "$phase" \
      "${train_args[@]}" 2>&1 | sed -u "s/^/   [$name] /" >&2
    echo "$key" >"$STAMPS/train-$name"
  fi
  selected "$out/$last/result.json"
}
step "labtax train (before, after)"
CANDIDATE=$(train_one after "$GEN" "$TRAIN")
BASE=$MODEL
if [ -d "$BEFORE" ]; then
  BASE=$(train_one before "$BEFORE" "$OUT/train-before")
  BASE=${BASE:-$MODEL}
else
  say "no commit-1 sets in $BEFORE (a demo-out from an older demo): comparing with the untrained $MODEL"
fi
eval_rc=0
if [ -z "$CANDIDATE" ]; then
  say "both training sets are empty: the teacher's candidates were all dropped by its own filters."
  say "nothing to train on; raise DEMO_SAMPLES / DEMO_MAX_TOKENS, or use a stronger teacher"
  say "(labtax diff-generate --teacher openai --endpoint URL)."
  done_step "skipped (no training data)"
else
  done_step "$MODEL, twice"
  until_here train

  # The seed-noise floor (DEMO_NOISE=0 skips it): how far the comparison moves by chance. The old
  # student's phase 2 again from the same phase-1 checkpoint, only its data order changed (--seed 43),
  # and the eval of one against the other:
  # at the demo's sizes (five or six references a skill leaf) that alone moved a skill leaf past the
  # gate's 5 % (docs/train.md, *The comparison's noise floor*). The gate then takes it as its noise
  # floor (labtax eval --noise-floor): an unchanged leaf regresses only when the new student is also
  # worse than that retrain by more than 5 %.
  NOISE_JSON=""
  noise_key=none
  if [ "${DEMO_NOISE:-1}" = 1 ] && [ "$BASE" != "$MODEL" ] && [ -s "$BEFORE/phase2_skills.jsonl" ]; then
    step "seed noise (old student)"
    start=$MODEL
    p1="$OUT/train-before/knowledge/result.json"
    [ -f "$p1" ] && start=$(selected "$p1")
    noise_key=$(echo "$(cat "$STAMPS/train-before" 2>/dev/null) $start seed 43" | sha256sum | cut -d' ' -f1)
    NOISE_JSON=$OUT/noise/eval.json # its own folder: eval.png is written beside it
    if [ ! -f "$NOISE_JSON" ] || [ "$(cat "$STAMPS/noise" 2>/dev/null)" != "$noise_key" ]; then
      rm -rf "$OUT/train-before-seed43"
      read -r -a train_args <<<"$TRAIN_ARGS"
      [ "$MAX_STEPS" != 0 ] && train_args+=(--max-steps "$MAX_STEPS")
      "$LABTAX" train --data "$BEFORE" --model "$start" --output "$OUT/train-before-seed43" --phase skills \
        --seed 43 --select last "${train_args[@]}" 2>&1 | sed -u 's/^/   [before, seed 43] /'
      reseeded=$(selected "$OUT/train-before-seed43/skills/result.json")
      mkdir -p "$OUT/noise"
      "$LABTAX" eval --base "$BASE" --candidate "$reseeded" --data "$GEN" --format json --output "$NOISE_JSON" \
        >/dev/null || true # its gate verdict is not the demo's: only the per-leaf changes are read
      echo "$noise_key" >"$STAMPS/noise"
    fi
    done_step "the old student against itself, another seed"
  fi

  # -------------------------------------------------------------- 7. eval
  step "labtax eval (before -> after)"
  eval_args=()
  [ -n "$NOISE_JSON" ] && eval_args+=(--noise-floor "$NOISE_JSON")
  eval_key=$(echo "$BASE $CANDIDATE $(cat "$STAMPS"/train-* 2>/dev/null) noise $noise_key" | sha256sum | cut -d' ' -f1)
  if [ -f "$OUT/eval.md" ] && [ "$(cat "$STAMPS/eval" 2>/dev/null)" = "$eval_key" ]; then
    say "checkpoints unchanged since the last run: showing the last report"
    eval_rc=$(cat "$STAMPS/eval-rc" 2>/dev/null || echo 0)
    done_step "skipped (unchanged)"
  else
    say "labtax eval --base $BASE --candidate $CANDIDATE --format json ${eval_args[*]}"
    "$LABTAX" eval --base "$BASE" --candidate "$CANDIDATE" --data "$GEN" --format json \
      --output "$OUT/eval.json" "${eval_args[@]}" >/dev/null || eval_rc=$?
    "$VENV/bin/python" -c 'import json,sys; from labtax.eval.record import EvalReport; from labtax.report.eval import render_markdown
sys.stdout.write(render_markdown(EvalReport.from_json(json.load(open(sys.argv[1])))))' "$OUT/eval.json" >"$OUT/eval.md"
    echo "$eval_key" >"$STAMPS/eval"
    echo "$eval_rc" >"$STAMPS/eval-rc"
    done_step "gate exit code $eval_rc"
  fi
  sed -u 's/^/   /' "$OUT/eval.md"
  # What the demo is for, in a few lines: the new leaf's closed-book accuracy before -> after, the
  # skills' verdicts, and whether the method worked (the new leaf learned, nothing else regressed).
  printf '\n\033[1m== did the method work?\033[0m\n'
  "$VENV/bin/python" scripts/demo_summary.py "$OUT/eval.json" "$NEW_LEAF" | sed -u 's/^/   /'
fi

# ---------------------------------------------------------------- summary
total=$(($(date +%s) - T0))
printf '\n\033[1m== where everything is\033[0m\n'
say "taxonomy repo      $TAX  (git log: commit 1 = all leaves but one, commit 2 = the last leaf)"
say "training sets      $GEN/phase1_knowledge.jsonl, phase2_skills.jsonl, test.jsonl"
say "run manifest       $GEN/manifest.json  (leaf -> content key, counts, tokens, seconds)"
say "leaf store/ledger  $GEN/leaves/, $GEN/ledger.sqlite  (why the second run is free)"
say "commit-1 sets      $BEFORE/  (the student trained on them: $OUT/train-before/)"
say "checkpoints        $TRAIN/knowledge/, $TRAIN/skills/  (chosen: ${CANDIDATE:-none})"
say "eval report        $OUT/eval.md, eval.json  (per leaf: the student before vs after the new leaf)"
[ -n "${NOISE_JSON:-}" ] && say "seed noise         $NOISE_JSON  (the old student against its phase 2 with seed 43)"
say "this output        $OUT/demo.log"
# Exit codes as in labtax/errors.py: 1 is the gate; 2 (I/O, an unloadable checkpoint) and 3 (a bug,
# its log named on stderr) are not a verdict about the model.
if [ "$eval_rc" -eq 1 ]; then
  say "the eval gate failed (exit $eval_rc): the gate is what CI uses to refuse a checkpoint that did not"
  say "learn its new leaf or got worse on another one."
elif [ "$eval_rc" -ne 0 ]; then
  say "labtax eval did not reach a verdict (exit $eval_rc: 2 an I/O or usage error, 3 a bug; see above)"
fi
printf '\n\033[1m== timings\033[0m\n'
printf '   %s\n' "${TIMINGS[@]}"
printf '   %-28s %5ss\n' "total" "$total"
