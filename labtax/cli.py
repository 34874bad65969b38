"""The labtax command line: click commands only.

Each command parses its options, calls the core, picks a reporter and returns an exit code. What
every command needs is imported at module level; a command imports its own stage in its body when
that costs numpy, PyYAML, torch or more milliseconds than `labtax diff`'s CPU budget leaves
(bench/diff_bench.py), so that `validate`, `diff`, `config`, `init` and `--help` never load them
(tests/test_structure.py).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from labtax import __version__
from labtax.cli_options import (
    LabtaxGroup,
    forward_args,
    generation_options,
    generation_settings,
    guarded,
    mix_options,
    mix_settings,
    output_wait_option,
    taxonomy_option,
    teacher_options,
    teacher_spec,
    train_output_options,
)
from labtax.cli_tools import config_command, export_command
from labtax.cli_use import chat_command
from labtax.errors import EXIT_OK, UsageError
from labtax.progress import note
from labtax.report import ReportContext, render, render_report
from labtax.scaffold import files, gitdirs, init, install_hooks, revision
from labtax.settings import set_in_config_file
from labtax.taxonomy import collect_targets
from labtax.taxonomy.catalog import RULES
from labtax.taxonomy.config import load_config, load_config_at
from labtax.taxonomy.fix import fix_and_report
from labtax.util.pipes import quiet_closed_stdout
from labtax.util.ranks import under_torchrun

if TYPE_CHECKING:
    from labtax.train.command import TrainCommand  # torch: for `labtax train` only

_guarded = guarded


@click.group(cls=LabtaxGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="labtax")
def cli() -> None:
    """labtax: validate, diff, generate and train on a LAB taxonomy of qna.yaml files.

    Exit codes: 0 ok, 1 findings or a failed gate, 2 usage or I/O error, 3 a bug (traceback in
    the log file named), 4 output directory locked by another run, 5 teacher failure.
    """


# ---------------------------------------------------------------- validate (taxonomy/, report/)


def _validate_targets(root: Path, paths: tuple[str, ...], changed: bool, base: str | None) -> list[str]:
    """The root-relative files to check: PATHS, the changed leaves, or the whole taxonomy."""
    if changed:
        from labtax.diff import changed_leaves  # git plumbing (~30 ms): only for --changed

        changes = changed_leaves(root, base=base)
        live = [c.path for c in changes if c.status != "deleted" and (root / c.path).exists()]
        return collect_targets(root, live) if live else []
    return collect_targets(root, list(paths) if paths else None, Path.cwd())


@cli.command("validate")
@click.argument("paths", nargs=-1, type=click.Path())
@taxonomy_option
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github", "sarif"]), default="text",
              show_default=True, help="Output format (json and sarif 2.1.0 are stable).")
@click.option("--strict", is_flag=True, help="Treat warnings as errors (also `strict: true` in .labtax.yaml).")
@click.option("--changed", is_flag=True, help="Only the leaves changed since --base (see `labtax diff`).")
@click.option("--base", metavar="REF", help="Base ref for --changed (default: merge-base with origin/main).")
@click.option("--output", "output_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the report to FILE instead of standard output.")
@click.option("--list-rules", is_flag=True, help="Print every rule id with its severity and exit.")
@click.option("--fix", is_flag=True, help="First fix trailing spaces, a missing final newline, tabs in "
              "indentation and CRLF in place (comments kept); exit 1 when a file was changed.")
@click.option("--config-ref", metavar="REF",
              help="Read .labtax.yaml as committed at REF (a pull request's base), not the working tree's.")
@_guarded
def validate_cmd(paths: tuple[str, ...], taxonomy_dir: Path, fmt: str, strict: bool, changed: bool,
                 base: str | None, output_file: str | None, list_rules: bool, fix: bool,
                 config_ref: str | None) -> int:
    """Check qna.yaml leaves (schema, YAML hygiene, rules). Never runs taxonomy code or uses the network.

    PATHS may be leaf files, attribution.txt files (their leaf is checked) or directories; without
    PATHS the whole taxonomy is checked. Exit 0: clean or warnings only; 1: errors; 2: usage/IO error.
    """
    from labtax.taxonomy.leaves import check_targets  # the validator (PyYAML): `labtax diff` never loads it

    if list_rules:
        for rule, (level, text) in RULES.items():
            click.echo(f"{rule:22} {level:8} {text}")
        return 0
    if changed and paths:
        raise UsageError("give PATHS or --changed, not both")
    if base and not changed:
        raise UsageError("--base needs --changed")
    if not taxonomy_dir.is_dir():
        raise UsageError(f"{taxonomy_dir}: not a directory")
    root = taxonomy_dir.absolute()
    config = (load_config_at(root, config_ref) if config_ref else load_config(root)).with_strict(strict)
    targets = _validate_targets(root, paths, changed, base)
    if not targets and not paths and not changed:  # most likely the wrong --taxonomy: not a green run
        raise UsageError(f"no leaves found under {root} (knowledge/, compositional_skills/, foundational_skills/)",
                         hint="pass --taxonomy DIR, the folder holding those three")
    fixed = 0
    if fix:
        fixed = fix_and_report(root, targets, lambda line: click.echo(line, err=True))
    findings = check_targets(root, targets, config)
    report = render(fmt, findings, ReportContext.for_root(root, len(targets)))
    if output_file:
        Path(output_file).write_text(report, encoding="utf-8")
    else:
        click.echo(report, nl=False)
    return 1 if fixed or any(f.severity == "error" for f in findings) else 0


# ---------------------------------------------------------------- diff (diff/)


@cli.command("diff")
@taxonomy_option
@click.option("--base", default=None, metavar="REF",
              help="Default: origin/main, else main. 'empty': every leaf is added.")
@click.option("--head", default=None, metavar="REF",
              help="Default: the working tree (staged, unstaged, untracked).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="One line per leaf, or the stable JSON document {base, head, changes}.")
@_guarded
def diff_command(taxonomy_dir: Path, base: str | None, head: str | None, fmt: str) -> int:
    """List the leaves changed since the merge-base of BASE and HEAD.

    One line per leaf, sorted by path: `A|M|D path`, `R old -> new`. Exit 0, also when nothing
    changed ("no changed leaves" on stderr); 2 for a git error (unknown ref, shallow clone, ...).
    """
    from labtax.diff import diff_taxonomy  # as validate loads it for --changed only

    result = diff_taxonomy(taxonomy_dir, base, head)
    text = render_report("diff", fmt, result)
    # Bytes, so that a file name that is not UTF-8 comes out as the very bytes git has.
    click.echo(text.encode("utf-8", "surrogateescape"), nl=False)
    if not result.changes:
        note("no changed leaves")
    return 0


# ---------------------------------------------------------------- generate, diff-generate, gc (sdg/)


@cli.command("generate")
@click.argument("leaves", nargs=-1, type=click.Path())
@taxonomy_option
@click.option("--output", default="generated", show_default=True, type=click.Path(file_okay=False),
              metavar="DIR", help="Where <leaf folder>.jsonl, sets/ and generate-report.json are written.")
@mix_options
@teacher_options
@generation_options
@_guarded
def generate_cmd(leaves: tuple[str, ...], taxonomy_dir: Path, output: str, **params: Any) -> int:
    """Generate synthetic data for LEAVES (qna.yaml files or their folders; default: every leaf).

    Also mixes them into --output/sets/ (training sets, test.jsonl, validation.jsonl, manifest.json),
    through the diff-generate engine: --output keeps its leaf store and ledger, so a rerun resumes.
    """
    from labtax.sdg.generate import (  # PyYAML, numpy: not for every command line
        generate_leaves,
        load_forced_leaves,
        summary_line,
        write_report,
    )

    forced = load_forced_leaves(taxonomy_dir, leaves)
    if not forced:
        note("no leaves to generate")
        return EXIT_OK
    settings = generation_settings(params)
    mixing = mix_settings(params, settings.seed)
    run = generate_leaves(forced, teacher_spec(params).build(), settings, taxonomy_root=taxonomy_dir,
                          output=Path(output), mix_settings=mixing)
    for outcome in run.outcomes:
        click.echo(summary_line(outcome))
    write_report(Path(output), run.outcomes)
    return run.exit_code


@cli.command("diff-generate")
@taxonomy_option
@click.option("--base", default=None, metavar="REF",
              help="Compare from (merge-base with) REF; 'empty' = every leaf added. Default: origin/main, else main.")
@click.option("--head", default=None, metavar="REF", help="Compare to REF. Default: the working tree.")
@click.option("--output", default="generated", show_default=True, type=click.Path(file_okay=False),
              metavar="DIR", help="Leaf store, ledger, training sets and manifest.")
@click.option("--dry-run", is_flag=True, help="Print the plan (generate/reuse/drop, estimates); change nothing.")
@mix_options
@output_wait_option("another run on the same --output")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--untrusted-store", is_flag=True,
              help="--output was restored from elsewhere (a CI cache): re-check every store file and record.")
@teacher_options
@generation_options
@_guarded
def diff_generate_cmd(taxonomy_dir: Path, base: str | None, head: str | None, output: str, dry_run: bool,
                      wait_s: float, fmt: str, untrusted_store: bool, **params: Any) -> int:
    """Generate data for the leaves that changed between --base and --head, reuse the rest, re-mix.

    Writes phase1_knowledge.jsonl, phase2_skills.jsonl, test.jsonl and manifest.json into --output.
    A killed run resumes where it stopped; nothing changed means zero teacher calls.
    """
    from labtax.sdg.running import diff_generate, exit_code  # numpy (mixing): not for every command line
    spec = teacher_spec(params)
    settings = generation_settings(params)
    progress = None if fmt == "json" else note
    outcome = diff_generate(
        taxonomy_dir, Path(output), base=base, head=head, settings=settings,
        mix_settings=mix_settings(params, settings.seed), teacher=spec.build_lazy(),
        dry_run=dry_run, wait=wait_s, progress=progress, untrusted_store=untrusted_store,
    )
    click.echo(render_report("diff-generate", fmt, outcome), nl=False)
    return exit_code(outcome)


@cli.command("gc")
@click.option("--output", default="generated", show_default=True, type=click.Path(file_okay=False),
              metavar="DIR", help="The diff-generate output directory.")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@output_wait_option("a run holding --output")
@_guarded
def gc_cmd(output: str, dry_run: bool, wait_s: float) -> int:
    """Delete leaf data that no current leaf (manifest.json) references, and leftovers of killed runs."""
    from labtax.sdg.output_dir import collect_garbage  # the ledger's sqlite3: not for every command line

    res = collect_garbage(Path(output), dry_run=dry_run, wait=wait_s)
    verb = "would remove" if dry_run else "removed"
    for key in res.removed:
        click.echo(f"{verb} leaves/{key[:2]}/{key}.jsonl")
    for path in res.leftovers:
        click.echo(f"{verb} {path}")
    click.echo(f"gc: {verb} {len(res.removed)} unreferenced leaf files and {len(res.leftovers)} leftovers "
               f"({res.bytes_freed} bytes), {res.requests_pruned} ledger responses; kept {res.kept} keys")
    return 0


# ---------------------------------------------------------------- train (train/)


@cli.command("train")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Directory with phase1_knowledge.jsonl, phase2_skills.jsonl and validation.jsonl.")
@click.option("--model", default="embedded-small", show_default=True, metavar="NAME|PATH",
              help="`embedded-small` (SmolLM2-135M-Instruct), `embedded` (Qwen2.5-Coder-1.5B), `tiny` "
                   "(2-layer Llama) or a local HF directory.")
@click.option("--output", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Run directory: checkpoints, training state, metrics, token cache.")
@click.option("--phase", type=click.Choice(["knowledge", "skills", "all"]), default="all", show_default=True,
              help="Phase 1 (knowledge), phase 2 (skills, from phase 1's selected checkpoint) or both.")
@click.option("--select", type=click.Choice(["last", "loss", "eval"]), default="loss", show_default=True,
              help="Which checkpoint of a phase is kept: the last, the lowest loss on validation.jsonl "
                   "(the held-out validation split, never the eval gate's test items; phase 2 only: phase 1 "
                   "keeps its last, trained for its exposures), or the best labtax.eval score on that split.")
@click.option("--select-on-test", is_flag=True,
              help="Let --select loss use test.jsonl (the eval gate's own items) when there is no validation.jsonl.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True), metavar="FILE",
              help="YAML overrides: `common:`, `knowledge:`, `skills:` blocks (see docs/train.md).")
@click.option("--lr", type=float, help="Peak learning rate (every phase that runs).")
@click.option("--epochs", type=int, help="Epochs per phase (given, it wins over --exposures).")
@click.option("--exposures", type=int, metavar="N",
              help="Fit epochs so that each knowledge fact is seen about N times (0: --epochs as configured).")
@click.option("--interpolate", type=float, metavar="W",
              help="Keep each phase's result W of the way from its start model to the trained weights "
                   "(0 < W <= 1; default 1: as trained; docs/train.md).")
@click.option("--anchor", type=float, metavar="W",
              help="Phase 1 keeps the start model's predictions on the skill rows: W x their KL is added to "
                   "the knowledge loss (0: off; docs/train.md).")
@click.option("--effective-batch", type=int, metavar="SAMPLES", help="Samples per optimizer step.")
@click.option("--max-steps", type=int, metavar="N", help="Cap on optimizer steps per phase (0: none).")
@click.option("--max-seq-len", type=int, metavar="TOKENS", help="Longer samples are dropped, never truncated.")
@click.option("--max-tokens-per-batch", type=int, metavar="TOKENS", help="Token budget of one packed micro-batch.")
@click.option("--warmup-steps", type=int, metavar="N", help="Linear warm-up length in optimizer steps.")
@click.option("--schedule", type=click.Choice(["cosine", "constant"]), help="Learning rate after warm-up.")
@click.option("--save-every", type=int, metavar="SAMPLES", help="Checkpoint every N samples (0: per epoch).")
@click.option("--activation-checkpointing", type=click.Choice(["none", "mlp", "layers"]),
              help="Recompute activations in the backward: none (fastest), mlp or layers (least memory).")
@click.option("--seed", type=int, help="Seed of the data order and of the tiny model's weights.")
@click.option("--lora-rank", type=int, metavar="R", help="Train a LoRA adapter of rank R (PEFT) instead of every "
              "weight; each checkpoint is the merged model, with the adapter in its adapter/ folder.")
@click.option("--lora-alpha", type=int, metavar="A", help="LoRA scaling numerator (the update is B·A·alpha/rank; "
              "default: 2 x rank).")
@click.option("--lora-dropout", type=float, metavar="P", help="Dropout on the LoRA input (default 0.05).")
@click.option("--lora-target-modules", metavar="NAME[,NAME]", help="Linear layers that get adapters, e.g. "
              "q_proj,v_proj (default: every linear layer of the blocks).")
@click.option("--load-in-4bit", is_flag=True, default=None, help="QLoRA: the base in 4-bit NF4 (bitsandbytes; "
              "a CUDA GPU only). Needs --lora-rank.")
@click.option("--nproc-per-node", type=int, metavar="N", help="Launch N processes per node with torchrun (FSDP2).")
@click.option("--nnodes", type=int, default=1, show_default=True, metavar="M", help="Number of nodes (torchrun).")
@click.option("--node-rank", type=int, default=0, show_default=True, metavar="R", help="This node's rank.")
@click.option("--rdzv-endpoint", metavar="HOST:PORT", help="Rendezvous address shared by all nodes.")
@click.option("--dist-timeout", type=click.FloatRange(min=0.0, min_open=True), default=60.0, show_default=True,
              metavar="MINUTES", help="torchrun: how long a rank waits in a collective before failing.")
@train_output_options
@_guarded
def train_cmd(**params: Any) -> int:
    """Train in phases (LAB): knowledge, then skills from phase 1's chosen checkpoint.

    A killed run resumes from its last saved state when the same command runs again.
    """
    from labtax.train import command, launch, reporting  # torch: for this command only

    report_to = reporting.resolve_report_to(params["report_to"])  # a missing tracker fails before torchrun starts
    ctx = click.get_current_context()
    from_file = set_in_config_file(ctx)
    request = _train_request(params, from_file)
    command.check_lora(request, params["nproc_per_node"] or 1, params["nnodes"] or 1)
    if params["nproc_per_node"] and not under_torchrun():
        # A usage error is one line and exit 2 here, not a traceback per rank.
        command.check_train_command(request)
        options = {p.name: p.opts[0] for p in ctx.command.params if p.name and p.opts}
        # The workers read .labtax.yaml themselves (same folder): forwarded as flags, its values
        # would rank above --config there.
        placement = launch.Placement(nproc_per_node=params["nproc_per_node"], nnodes=params["nnodes"] or 1,
                                     node_rank=params["node_rank"] or 0, rdzv_endpoint=params["rdzv_endpoint"])
        return launch.launch(forward_args({k: v for k, v in params.items() if k not in from_file}, options),
                             placement)
    scorer = None
    if params["select"] == "eval":  # train/ gets eval's scorer as a callable: it imports no eval/
        from labtax.eval.scorer import score_checkpoint

        scorer = functools.partial(score_checkpoint, data_dir=Path(params["data_dir"]))
    final = command.run_train_command(request, report_to, scorer)
    if final:
        click.echo(final)
    return 0


_LORA_COMPANIONS = ("lora_alpha", "lora_dropout", "lora_target_modules")  # meaningless without --lora-rank


def _train_request(params: dict[str, Any], from_file: frozenset[str]) -> TrainCommand:
    """`labtax train`'s options as the typed TrainCommand. `from_file` names the options whose value
    came from `.labtax.yaml`: they rank below the --config file, the flags above it."""
    from labtax.train.command import (  # torch: for this command only
        LoraSettings,
        TrainCommand,
        TrainOverrides,
    )

    names = TrainOverrides.names()
    rank = params["lora_rank"]
    if not rank:  # --lora-rank 0 or none: no adapter, so its companion flags are a mistake
        if params["load_in_4bit"]:
            raise UsageError("--load-in-4bit is QLoRA: it needs --lora-rank N")
        given = [f"--{k.replace('_', '-')}" for k in _LORA_COMPANIONS if params[k] is not None]
        if given:
            raise UsageError(f"{', '.join(given)} need --lora-rank N")
    targets = tuple(t.strip() for t in (params["lora_target_modules"] or "").split(",") if t.strip())
    alpha, dropout = params["lora_alpha"], params["lora_dropout"]
    lora = LoraSettings(rank=rank, alpha=alpha if alpha is not None else 2 * rank,
                        dropout=dropout if dropout is not None else 0.05, target_modules=targets,
                        load_in_4bit=bool(params["load_in_4bit"])) if rank else None
    return TrainCommand(
        data_dir=Path(params["data_dir"]), model=params["model"], output=Path(params["output"]),
        phase=params["phase"], select=params["select"],
        config_file=Path(params["config_file"]) if params["config_file"] else None,
        flags=TrainOverrides(**{k: params[k] for k in names if k not in from_file}),
        from_file=TrainOverrides(**{k: params[k] for k in names if k in from_file}),
        save_dtype=params["save_dtype"], select_on_test=bool(params["select_on_test"]),
        dist_timeout_min=float(params["dist_timeout"]), lora=lora)


# ---------------------------------------------------------------- eval (eval/)


@cli.command("eval")
@click.option("--base", "base", required=True, metavar="MODEL",
              help="The model before training: a checkpoint directory, `embedded-small`, `embedded` or `tiny`.")
@click.option("--candidate", "candidate", required=True, metavar="MODEL",
              help="The trained model: a checkpoint directory, `embedded-small`, `embedded` or `tiny`.")
@click.option("--data", "data_dir", required=True, type=click.Path(), metavar="DIR",
              help="Generated data directory holding test.jsonl and manifest.json.")
@click.option("--leaves", "leaves", type=click.Choice(["changed", "all"]), default="changed",
              show_default=True, help="Changed leaves plus a sample of unchanged ones, or every leaf.")
@click.option("--sample-unchanged", type=click.IntRange(min=0), default=5, show_default=True, metavar="N",
              help="How many unchanged leaves to sample (seeded) with --leaves changed.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the unchanged-leaf sample.")
@click.option("--fail-on-regression", "regression_pct", type=float, default=5.0, show_default=True,
              metavar="PCT", help="Fail when an unchanged leaf's per-token NLL grows by more than PCT %.")
@click.option("--noise-floor", "noise_floor", type=click.Path(dir_okay=False), default=None, metavar="REPORT",
              help="A JSON report of this eval's base against the base retrained with another --seed: an "
                   "unchanged leaf then regresses only when it is also worse than that retrain by more than "
                   "--fail-on-regression.")
@click.option("--min-improvement", "improvement_pct", type=float, default=0.0, show_default=True,
              metavar="PCT", help="A changed leaf must lower its per-token NLL by more than PCT %.")
@click.option("--judge-endpoint", "judge_endpoints", multiple=True, metavar="URL",
              help="OpenAI-compatible base URL of a judge model (repeat for several); off by default.")
@click.option("--judge", "judge_teacher", type=click.Choice(["openai", "embedded"]), default=None,
              help="The pairwise judge: openai (the --judge-endpoint servers) or embedded (in-process).")
@click.option("--judge-model", default=None,
              help="Model name sent to the judge (default: the one the endpoint lists).")
@click.option("--judge-api-key-env", default=None, metavar="VAR",
              help="Environment variable holding the judge's API key.")
@click.option("--judge-concurrency", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=128, show_default=True,
              help="Bound on each model's greedy answer for the judge.")
# 48: eval.closed_book.CLOSED_BOOK_MAX_NEW_TOKENS (not imported here: the eval modules load numpy).
@click.option("--closed-book-tokens", type=click.IntRange(min=1), default=48, show_default=True, metavar="N",
              help="Bound on each model's greedy closed-book answer (a short answer: the fact).")
@click.option("--batch-tokens", type=click.IntRange(min=64), default=8192, show_default=True,
              help="Padded tokens per scoring forward pass.")
@click.option("--device", default="auto", show_default=True,
              help="Where to run the models: auto (a GPU when there is one, else the CPU), cpu, cuda, cuda:1...")
@click.option("--tiny-seed", type=int, default=42, show_default=True,
              help="The seed `tiny` is built from (labtax train's --seed; its default is 42).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text",
              show_default=True)
@click.option("--output", "output", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="Also write the rendered report to FILE (and eval.png beside it).")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), default=None, metavar="PNG",
              help="Write the per-leaf figure to PNG (default: eval.png beside --output).")
@_guarded
def eval_command(fmt: str, output: str | None, plot_file: str | None, **params: Any) -> int:
    """Did the candidate learn each changed leaf, and forget nothing else? Exit 1 when the gate fails.

    Per leaf, on its strongest evidence: closed-book multiple choice, a pairwise judge (skills, with
    --judge-endpoint or --judge embedded), the likelihood change beyond the unchanged (control)
    leaves; each with a 95% paired bootstrap interval. A changed leaf must be `improved`; an unchanged
    one may not regress. Exit codes: 0 pass (or nothing changed), 1 gate failed, 2 usage error.
    """
    from labtax.eval import gate, noise, plot, run  # numpy, the models: for this command only
    from labtax.train.model_card import record_eval

    # A judge with --judge-endpoint (openai) or --judge embedded; the flags are checked here, where
    # their names are known, and the core gets typed options.
    endpoints = tuple(params["judge_endpoints"] or ())
    kind = params["judge_teacher"] or ("openai" if endpoints else None)
    if kind == "openai" and not endpoints:
        raise UsageError("--judge openai needs --judge-endpoint URL")
    if kind == "embedded" and endpoints:
        raise UsageError("--judge-endpoint is only for --judge openai")
    judge = None if kind is None else run.JudgeOptions(
        endpoints=endpoints, model=params["judge_model"], api_key_env=params["judge_api_key_env"],
        concurrency=params["judge_concurrency"], max_new_tokens=params["max_new_tokens"], teacher=kind)
    floor = noise.load_noise_floor(Path(params["noise_floor"])) if params["noise_floor"] else None
    options = run.EvalOptions(
        base=params["base"], candidate=params["candidate"], data_dir=Path(params["data_dir"]),
        leaves="all" if params["leaves"] == "all" else "changed", sample_unchanged=params["sample_unchanged"],
        seed=params["seed"], thresholds=gate.Thresholds(fail_on_regression_pct=params["regression_pct"],
                                                        min_improvement_pct=params["improvement_pct"]),
        judge=judge, batch_tokens=params["batch_tokens"], device=params["device"], tiny_seed=params["tiny_seed"],
        closed_book_max_new_tokens=params["closed_book_tokens"], noise_floor=floor)

    report = run.run_eval(options, log=lambda msg: note(f"labtax eval: {msg}"))
    rendered = render_report("eval", fmt, report)
    click.echo(rendered, nl=False)
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(rendered, encoding="utf-8")
    if (png := plot.plot_path(plot_file, output)) is not None:
        note(f"labtax eval: wrote {plot.write_plot(report, png)}")
    # train/ imports no eval/: the model card takes the report as its JSON document, the format on disk.
    if Path(params["candidate"]).is_dir() and record_eval(Path(params["candidate"]), report.to_json()):
        note(f"labtax eval: per-leaf results recorded in {params['candidate']}/README.md (model-index)")
    return report.exit_code


# ---------------------------------------------------------------- init, install-hooks (hooks, CI)


@cli.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that exist with other content.")
@click.option("--labtax-repository", default=None, metavar="OWNER/NAME",
              help="The labtax repository the workflows point at; given, the pre-commit config pins it "
                   "too (remote form) instead of a local hook running the installed labtax.")
@click.option("--rev", "--labtax-ref", "labtax_ref", default=None, metavar="REF",
              help="The labtax tag or SHA they pin (default: the installed labtax's commit).")
@_guarded
def init_command(directory: Path, force: bool, labtax_repository: str | None, labtax_ref: str | None) -> int:
    """Write .pre-commit-config.yaml (a local hook running the installed labtax; the remote form with
    --labtax-repository), GitHub workflow callers and a commented .labtax.yaml at the top of the
    taxonomy repository containing DIRECTORY. Existing files are kept unless --force."""
    options = init.InitOptions(repository=labtax_repository or init.DEFAULT_REPOSITORY,
                               ref=labtax_ref or revision.installed_ref(),
                               force=force, remote_hook=labtax_repository is not None)
    root = gitdirs.worktree_root(directory.resolve())
    for line in files.written_lines(init.init_repository(root, options), root)[0]:
        click.echo(line)
    click.echo("next: `pre-commit install` (or `labtax install-hooks`), commit the files, and set the")
    click.echo("      teacher endpoint/secret the generate workflow names (see .labtax.yaml)")
    return 0


@cli.command("install-hooks")
@click.option("--force", is_flag=True, help="Replace hooks that labtax did not write.")
@click.option("--hook", "hooks", multiple=True, type=click.Choice(["pre-commit", "pre-push"]),
              help="Install only this hook (repeatable; default: both).")
@_guarded
def install_hooks_command(force: bool, hooks: tuple[str, ...]) -> int:
    """Install git pre-commit and pre-push hooks that run `labtax validate` on the changed leaves,
    into the directory git runs hooks from (core.hooksPath, shared by all worktrees)."""
    cwd = Path.cwd()
    # Paths shown from the work tree's top (`.git/hooks/pre-commit`), absolute where the hooks lie
    # outside it (core.hooksPath elsewhere, a linked worktree's shared hooks).
    written = install_hooks.install_hooks(cwd, hooks or install_hooks.HOOK_NAMES, force=force)
    lines, skipped = files.written_lines(written, gitdirs.worktree_root(cwd))
    for line in lines:
        click.echo(line)
    if skipped:
        click.echo("labtax: a hook that labtax did not write was kept; --force replaces it", err=True)
        return 1
    return 0


cli.add_command(config_command)
cli.add_command(export_command)
cli.add_command(chat_command)


def main() -> None:
    quiet_closed_stdout()  # `labtax ... | head -1` ends quietly with the command's own code
    cli(prog_name="labtax")
