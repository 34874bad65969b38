"""Option decorators shared by the labtax commands, so that every command spells an option the same way.

`taxonomy_option`: `--taxonomy DIR`, defaulting to the root of the git work tree holding the current
directory (else the current directory), on every command that reads a taxonomy.
`teacher_options`: the backend and how requests reach it, on every command that runs a teacher.
`generation_options`: the knobs of `GenerationSettings` (what the pipelines ask for and keep).
`mix_options`: the knobs of `MixSettings` a run sets (replay floors, replay data, system prompt).
The values are gathered here into the typed options the stages take (`teacher_spec`,
`generation_settings`, `mix_settings`, `forward_args`): no stage receives click's option dict.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from labtax import __version__
from labtax.errors import EXIT_INTERRUPTED, LabtaxError, describe_os_error, exit_code_for
from labtax.progress import NORMAL, QUIET, VERBOSE, set_verbosity, verbosity
from labtax.sdg.settings import GenerationSettings, budget_policy, judges_policy, unreadable_policy
from labtax.settings import config_root, default_map
from labtax.taxonomy.discover import git_toplevel
from labtax.util.buglog import write_bug_log
from labtax.util.quoting import escape_bidi, one_line
from labtax.util.ranks import report_in_rank, under_torchrun
from labtax.util.redact import redact

if TYPE_CHECKING:  # imported by the commands that mix or run a teacher, not by every command line
    from labtax.mix.mix import MixSettings  # numpy
    from labtax.teachers import TeacherSpec  # the backends' registry (models, shutil)

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _stack(options: list[Decorator]) -> Decorator:
    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return apply


def guarded(func: Callable[..., int]) -> Callable[..., None]:
    """Run a command body; map domain errors to one line on stderr and the documented exit code.
    An exception labtax did not expect (a bug) is one line too, naming the log file that holds its
    traceback, with its own exit code (EXIT_BUG), so that CI never reads a crash as "gate failed"."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = func(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("labtax: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own usage errors and exits keep click's handling
        except (LabtaxError, OSError) as exc:
            # An error may quote a leaf path: its bidirectional controls are escaped as in every output.
            text = one_line(describe_os_error(exc)) if isinstance(exc, OSError) else escape_bidi(str(exc))
            _error_line(redact(text))
            sys.exit(exit_code_for(exc))
        except Exception as exc:  # noqa: BLE001 - a bug: one line and a log, never a traceback or exit 1
            log = write_bug_log(exc, __version__, redact)
            where = f"the traceback is in {log}" if log else "no log folder could be written"
            message = one_line(f"{type(exc).__name__}: {exc}")[:300]
            _error_line(f"unexpected {redact(message)} (a bug in labtax; {where})")
            sys.exit(exit_code_for(exc))
        sys.exit(code or 0)

    return wrapper


def _error_line(text: str) -> None:
    """`labtax: error: TEXT` on stderr; in a torchrun worker, left for the launcher instead, which
    prints it once for the whole run, naming the rank (labtax/train/launch.py)."""
    if report_in_rank(text):
        return
    click.echo(f"labtax: error: {text}", err=True)


class LabtaxCommand(click.Command):
    """Every labtax command: `--quiet`/`-q` and `--verbose`/`-v` added here, once, for all of them.
    They set `labtax.progress`'s level before the command body runs and are not passed to it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(click.Option(["--quiet", "-q"], is_flag=True, expose_value=True,
                                        help="Only errors and results: no progress lines or bars."))
        self.params.append(click.Option(["--verbose", "-v"], is_flag=True, expose_value=True,
                                        help="More detail on stderr (every training step beside the bar, ...)."))

    def invoke(self, ctx: click.Context) -> Any:
        quiet, verbose = ctx.params.pop("quiet", False), ctx.params.pop("verbose", False)
        if quiet and verbose:
            raise click.UsageError("--quiet and --verbose exclude each other")
        # A flag wins; a torchrun worker (started by labtax itself) keeps its parent's level.
        inherited = under_torchrun()
        set_verbosity(QUIET if quiet else VERBOSE if verbose else verbosity() if inherited else NORMAL)
        return super().invoke(ctx)


class LabtaxGroup(click.Group):
    """The `labtax` group: every command a LabtaxCommand, and `.labtax.yaml`'s `generate:` and
    `train:` sections as the commands' defaults (labtax.settings; a flag still wins)."""

    command_class = LabtaxCommand

    def invoke(self, ctx: click.Context) -> Any:
        try:
            ctx.default_map = {**default_map(self, config_root()), **(ctx.default_map or {})}
        except LabtaxError as exc:
            click.echo(f"labtax: error: {exc}", err=True)
            sys.exit(exit_code_for(exc))
        return super().invoke(ctx)


def _default_root(ctx: click.Context, param: click.Parameter, value: str | None) -> Path:
    """A given DIR as is; none: the work tree root (found without running git), else the cwd."""
    if value is not None:
        return Path(value)
    cwd = Path.cwd()
    return git_toplevel(cwd) or cwd


def taxonomy_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--taxonomy DIR` as a Path named `taxonomy_dir`."""
    return click.option(
        "--taxonomy", "taxonomy_dir", default=None, metavar="DIR", callback=_default_root,
        type=click.Path(file_okay=False),
        help="Taxonomy root; may be a subfolder of the git work tree (default: the current git work "
             "tree's root, else the current directory).",
    )(func)


def _count(flag: str, default: int, help_text: str, low: int = 1) -> Decorator:
    """An integer option of at least `low`, its default shown in --help."""
    return click.option(flag, type=click.IntRange(min=low), default=default, show_default=True, help=help_text)


teacher_options = _stack([
    click.option("--teacher", type=click.Choice(["embedded", "transformers", "openai", "vllm"]),
                 default="embedded", show_default=True, help="Generation backend."),
    click.option("--endpoint", "endpoints", multiple=True, metavar="URL",
                 help="OpenAI-compatible base URL (repeat for several servers; balanced by outstanding "
                      "requests)."),
    click.option("--model", default=None, metavar="NAME|DIR",
                 help="openai: served model name (default: the first of /v1/models); embedded: "
                      "`embedded` (Qwen2.5-Coder-1.5B, default), `embedded-small` (SmolLM2-135M, the "
                      "fallback) or a local HF dir; vllm: a local HF dir."),
    click.option("--api-key-env", default=None, metavar="VAR", help="Environment variable holding the API key."),
    _count("--concurrency", 16, "openai: requests in flight at most."),
    click.option("--completions", is_flag=True, help="openai: use /v1/completions instead of chat."),
    click.option("--timeout", type=click.FloatRange(min=0.1), default=120.0, show_default=True,
                 help="openai: seconds per request (then retried)."),
    _count("--retries", 6, "openai: retries per request (back-off with jitter; Retry-After honoured).", low=0),
    _count("--batch-size", 0, "embedded/transformers: rows decoded together (0: the width measured fastest on "
           "this machine, cached; the KV cache is kept within $LABTAX_TEACHER_KV_GIB, default 1).", low=0),
    _count("--tensor-parallel-size", 1, "vllm: GPUs one model is split across (tensor parallelism)."),
    click.option("--max-model-len", type=click.IntRange(min=16), default=None, metavar="TOKENS",
                 help="vllm: context length the engine reserves (default: the model's)."),
    click.option("--gpu-memory-utilization", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.9,
                 show_default=True, help="vllm: share of each GPU's memory for weights and KV cache."),
    click.option("--dtype", type=click.Choice(["auto", "bfloat16", "float16", "float32", "bf16-fp32"]), default="auto",
                 show_default=True, help="embedded/transformers/vllm: weight and activation dtype (auto: bf16 on a "
                                         "GPU or a CPU with bf16 matrix hardware, else the fastest measured whose "
                                         "weights fit $LABTAX_TEACHER_RSS_GIB; cached). bf16-fp32: bf16 weights, "
                                         "fp32 compute (in-process only)."),
])

generation_options = _stack([
    _count("--samples-per-leaf", 150, "Samples kept per 5 seed examples (knowledge: per 5 seed example x chunk cells)."),
    _count("--max-requests-per-leaf", 1000, "The most first-stage requests of a leaf; reported when it binds."),
    click.option("--seed", type=int, default=42, show_default=True),
    _count("--max-tokens", 512, "Per request."),
    click.option("--score-threshold", type=click.IntRange(1, 3), default=2, show_default=True,
                 help="Skills: keep pairs scored at least this (1-3)."),
    _count("--chunk-tokens", 400, "Knowledge: document chunk size in teacher tokens.", low=16),
    _count("--questions-per-request", 10, "Skills: new questions asked for per request (a small CPU teacher: fewer)."),
    click.option("--budget-tokens", type=click.IntRange(min=0), default=None, metavar="TOKENS",
                 help="The most completion tokens a leaf's first stage may write (counted at --max-tokens a "
                      "request; 0: none). A knowledge leaf spends it on every chunk and fact first, then on "
                      "more wordings. Default: 8192 with the embedded teacher (CPU-sized), none otherwise."),
    _count("--wordings-per-fact", 2, "Knowledge: differently worded question-answer pairs per fact."),
    _count("--qa-per-request", 6, "Knowledge: the most question-answer pairs one request asks for (facts x wordings)."),
    _count("--mc-per-leaf", 10, "Knowledge: closed-book multiple-choice items held out per leaf for labtax eval "
           "(0: none; the held-out wordings are asked either way).", low=0),
    _count("--calibration-examples", 6, "Per judge and leaf: seeds and broken copies each, to calibrate its verdicts.", low=2),
    click.option("--keep-unreadable-verdicts/--drop-unreadable-verdicts", "keep_unreadable_verdicts",
                 default=None,
                 help="Whether a judge/score answer that cannot be read passes (counted per stage). "
                      "Default: drop. Verdicts read from probabilities are always readable."),
    click.option("--document-reader", type=click.Choice(["auto", "docling", "builtin"]), default="auto",
                 show_default=True, help="Knowledge documents: docling when installed (auto), always (docling) "
                                         "or never (builtin: UTF-8, own HTML/DOCX readers, pypdf)."),
    click.option("--judges", type=click.Choice(["enforce", "advisory"]), default=None,
                 help="enforce (default): a judge's 'no' or a low score drops the row (the LAB recipe; "
                      "with probabilities, against the cut calibrated on the leaf's seeds); advisory: "
                      "verdicts are recorded in metadata but drop nothing."),
])


mix_options = _stack([
    click.option("--replay-ratio", type=click.FloatRange(min=0.0), default=0.03, show_default=True,
                 help="Phase 2 knowledge replay: at least this share of the skill samples."),
    _count("--replay-min-per-leaf", 1, "Phase 2 knowledge replay: at least this many rows of every knowledge leaf.", low=0),
    click.option("--replay-data", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
                 metavar="FILE", help="Precomputed skills data (JSONL, messages format) added to phase 2."),
    _count("--closed-book-rows", 1, "Phase 1: closed-book rows (question alone -> answer) per trained knowledge wording.", low=0),
    _count("--open-book-rows", 1, "Phase 1: open-book rows (chunk + question -> answer) per trained knowledge wording.", low=0),
    _count("--document-rows", 1, "Phase 1: copies of each knowledge chunk as an unmasked passage row.", low=0),
    click.option("--system-prompt", default=None, metavar="TEXT",
                 help="The system turn every sample begins with ('' for none; default: labtax's)."),
    click.option("--phase1", type=click.Choice(["one-step", "two-step"]), default="one-step", show_default=True,
                 help="two-step: also write phase 1 in the LAB paper's two steps (short answers; then long "
                      "answers + foundational skills + step 1 replayed), which labtax train runs in order."),
])


def mix_settings(params: dict[str, Any], seed: int) -> MixSettings:
    """The MixSettings of `mix_options` (popped from params) and the run's seed: the mixing stage
    gets typed settings, never click's dict."""
    from labtax.mix.mix import MixSettings  # numpy: for the commands that mix only

    system = params.pop("system_prompt")
    extra = {} if system is None else {"system_prompt": system}
    data = params.pop("replay_data")
    rows = {name: params.pop(name) for name in ("closed_book_rows", "open_book_rows", "document_rows")}
    return MixSettings(**rows, replay_ratio=params.pop("replay_ratio"), replay_min_per_leaf=params.pop("replay_min_per_leaf"),
                       replay_data=str(data) if data else "", seed=seed, phase1=params.pop("phase1"), **extra)


def teacher_spec(params: Mapping[str, Any]) -> TeacherSpec:
    """The TeacherSpec of `teacher_options`."""
    from labtax.teachers import TeacherSpec  # the backends' registry (models, shutil): not for labtax diff

    return TeacherSpec(teacher=params["teacher"], endpoints=tuple(params["endpoints"]), model=params["model"],
                       api_key_env=params["api_key_env"], concurrency=params["concurrency"],
                       timeout=params["timeout"], completions=params["completions"],
                       batch_size=params["batch_size"], retries=params["retries"],
                       tensor_parallel_size=params["tensor_parallel_size"], max_model_len=params["max_model_len"],
                       gpu_memory_utilization=params["gpu_memory_utilization"], dtype=params["dtype"])


def generation_settings(params: Mapping[str, Any]) -> GenerationSettings:
    """The GenerationSettings of `generation_options`: the knobs given plus the policies that an unset
    flag leaves to the teacher (`budget_tokens`, `judges`, `keep_unreadable_verdicts`)."""
    teacher = params["teacher"]
    return GenerationSettings(
        samples_per_leaf=params["samples_per_leaf"], max_requests_per_leaf=params["max_requests_per_leaf"],
        seed=params["seed"], max_tokens=params["max_tokens"], score_threshold=params["score_threshold"],
        chunk_tokens=params["chunk_tokens"], questions_per_request=params["questions_per_request"],
        calibration_examples=params["calibration_examples"], document_reader=params["document_reader"],
        wordings_per_fact=params["wordings_per_fact"], qa_per_request=params["qa_per_request"],
        mc_per_leaf=params["mc_per_leaf"],
        unreadable_verdicts=unreadable_policy(teacher, params["keep_unreadable_verdicts"]),
        budget_tokens=budget_policy(teacher, params["budget_tokens"]),
        judges=judges_policy(teacher, params["judges"]))


# torchrun's own options (labtax.train.launch.Placement): the launcher takes them, the workers never see them.
LAUNCH_OPTIONS = ("nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint")


def forward_args(params: Mapping[str, Any], flags: Mapping[str, str] | None = None) -> list[str]:
    """Command-line arguments that reproduce the parsed options, minus the launch options: what
    `labtax train` hands the workers torchrun starts. `flags` maps a parameter name to its option
    (`data_dir` -> `--data`); by default the name itself."""
    args: list[str] = []
    for key, value in params.items():
        if key in LAUNCH_OPTIONS or value is None or value is False:
            continue
        flag = (flags or {}).get(key) or "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args


def output_wait_option(what: str) -> Decorator:
    """`--wait S`: how long to wait for another run holding the output directory."""
    return click.option("--wait", "wait_s", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
                        metavar="S", help=f"Wait up to S seconds for {what} (then exit 4).")


train_output_options = _stack([
    click.option("--report-to", "report_to", default=None, metavar="TARGET[,TARGET]",
                 help="Where per-step metrics go: tensorboard, wandb, mlflow or none (default: tensorboard "
                      "when installed; events in OUTPUT/tensorboard/<phase>). A loss.png is always written."),
    click.option("--save-dtype", type=click.Choice(["bf16", "fp32"]), default=None,
                 help="dtype of the saved Hugging Face checkpoints (default: bf16 on a GPU, fp32 on a CPU)."),
])
