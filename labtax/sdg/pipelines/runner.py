"""What every pipeline shares: building requests with derived seeds, sending a leaf's requests to the
teacher as soon as each is ready (stream.py), and keeping the leaf's statistics.

Determinism: a request's seed is derived from (settings.seed, leaf path, stage, index) and its
messages from the leaf's seeds and earlier answers only; the index is the item's position among the
items alive at that stage in the leaf's own order (stream.Turns), not in the order replies arrive.
So the same leaf, settings and teacher answers always give the same requests and samples, at any
concurrency. All traffic goes through `teacher.complete(...)` (stream.Window), so a wrapper such as
the run ledger sees and can replay every request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
import time
from collections import Counter
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml

from labtax.data.names import funnel_in_order
from labtax.errors import ConfigError, TeacherError
from labtax.sdg.pipelines.stream import Flows, Window
from labtax.sdg.prompts import Prompt, load_prompt
from labtax.sdg.settings import SEED_BASE, GenerationSettings
from labtax.taxonomy.model import Leaf
from labtax.teachers.base import Teacher, TeacherBase, TeacherRequest, TeacherResponse, estimate_tokens
from labtax.teachers.replies import OVERLONG, clean_reply

T = TypeVar("T")
PIPELINE_DIR = Path(__file__).parent
Progress = Callable[[str, int, int], None]  # (stage, done, total)
UNREADABLE_RETRIES = 2  # extra attempts for a reply that parses to nothing
FAULT_COUNTS = ("failed", "unreadable", "retried_unreadable", "overlong", "invalid unicode", "control characters",
                "bad usage", "text not a string")


def derive_seed(base: int, leaf_path: str, stage: str, index: int) -> int:
    """A 31-bit seed (every backend accepts it) unique to one request of one stage of one leaf."""
    blob = f"{base}|{leaf_path}|{stage}|{index}".encode()
    return int(hashlib.sha256(blob).hexdigest()[:8], 16) & 0x7FFFFFFF


@dataclass(frozen=True)
class StageSpec:
    name: str
    prompt: Prompt
    judge: bool = False
    max_tokens: int | None = None
    drop: str | None = None  # the drop reason a "no" verdict counts as
    choices: tuple[str, ...] = ()  # a verdict's answer words: their first-token probabilities are asked for


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    version: int
    stages: dict[str, StageSpec]
    # The steps every generated row goes through, in order (`chain:` in the YAML): each row as soon
    # as its previous step answered (filters.Chain); a row a step drops goes no further.
    chain: tuple[str, ...] = ()


def _choices(stage: str, raw: Any) -> tuple[str, ...]:
    """A stage's verdict words. Unquoted yes/no are booleans to YAML: refused rather than turned into
    'True'/'False', which no teacher answers."""
    words = list(raw or ())
    if not all(isinstance(w, str) for w in words):
        raise ValueError(f"pipeline stage {stage}: quote the choices ({words!r}): they must be strings")
    return tuple(words)


@cache
def load_pipeline(name: str) -> PipelineSpec:
    path = PIPELINE_DIR / f"{name}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    stages = {
        stage: StageSpec(
            stage, load_prompt(spec["prompt"]), bool(spec.get("judge", False)), spec.get("max_tokens"),
            spec.get("drop"), _choices(stage, spec.get("choices")),
        )
        for stage, spec in data["stages"].items()
    }
    return PipelineSpec(str(data["name"]), int(data["version"]), stages, check_chain(path, data.get("chain"), stages))


def check_chain(path: Path, chain: Any, stages: Mapping[str, StageSpec],
                runnable: Collection[str] | None = None) -> tuple[str, ...]:
    """A pipeline's `chain:`, checked: a list of its own stages, each once (and, given `runnable`,
    each one the pipeline's code can run as a chain step). One line naming the file and the stage."""
    if not isinstance(chain, list) or not chain:
        raise ConfigError(f"{path}: chain: a list of the stages every row goes through, in order")
    seen: set[str] = set()
    for stage in chain:
        if not isinstance(stage, str) or stage not in stages:
            raise ConfigError(f"{path}: chain: {stage!r} is not a stage of this pipeline ({', '.join(stages)})")
        if stage in seen:
            raise ConfigError(f"{path}: chain: {stage!r} is listed twice")
        if runnable is not None and stage not in runnable:
            raise ConfigError(f"{path}: chain: {stage!r} cannot be a chain step (one of {', '.join(sorted(runnable))})")
        seen.add(stage)
    return tuple(chain)


@dataclass
class LeafResult:
    """A leaf's training samples (in a deterministic order), its statistics, and its held-out rows
    (never trained on): multiple-choice test rows (`metadata.source: "mc"`) and validation rows
    (`metadata.split: "validation"`)."""

    leaf: str
    samples: list[dict[str, Any]]
    stats: dict[str, Any]
    held_out: list[dict[str, Any]] = field(default_factory=list)
    # The seed texts (questions, answers, contexts) the generation prompts showed the teacher as
    # in-context examples: `held_out.seed_test_samples` flags exactly the gate items among them.
    shown: frozenset[str] = frozenset()


@dataclass
class Runner:
    """Sends a pipeline's requests for one leaf and counts everything that happens to them."""

    leaf: Leaf
    teacher: Teacher
    settings: GenerationSettings
    pipeline: PipelineSpec
    progress: Progress | None = None
    dropped: Counter[str] = field(default_factory=Counter)
    stages: dict[str, dict[str, int]] = field(default_factory=dict)
    generated: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # pipeline-specific counts (documents, chunks)
    # Rows at each step, in pipeline order (asked, parsed, deduplicated, judged, answered, scored, kept).
    funnel: dict[str, int] = field(default_factory=dict)
    calibrations: dict[str, Any] = field(default_factory=dict)  # judge stage -> calibrate.Calibration
    held_out: list[dict[str, Any]] = field(default_factory=list)  # test and validation rows (see LeafResult)
    verdicts: list[Any] = field(default_factory=list)  # each judge stage's filters.Verdicts
    shown: set[str] = field(default_factory=set)  # seed texts rendered into generation prompts
    started: float = field(default_factory=time.monotonic)

    def show(self, *texts: str | None) -> None:
        """Record seed texts a generation prompt renders (calibration's judged seeds are not
        in-context examples of generation and are not recorded)."""
        self.shown.update(t.strip() for t in texts if t and t.strip())

    def request(self, stage: str, index: int, **values: str) -> TeacherRequest:
        spec = self.pipeline.stages[stage]
        s = self.settings
        max_tokens = min(s.max_tokens, spec.max_tokens) if spec.max_tokens else s.max_tokens
        return TeacherRequest(
            messages=spec.prompt.render(**values),
            max_tokens=max_tokens,
            temperature=s.judge_temperature if spec.judge else s.temperature,
            top_p=1.0 if spec.judge else s.top_p,
            seed=derive_seed(s.seed, self.leaf.path, stage, index),
            tag=stage,
            choices=spec.choices,
        )

    def __post_init__(self) -> None:
        batch = protocol_member(self.teacher, "batch_size", 1)
        self.window = Window(self.teacher, limit=protocol_member(self.teacher, "concurrency", 1), batch=batch)
        self.flows = Flows()
        self._asked: dict[str, int] = {}  # requests asked for per stage so far (progress totals)
        self._shown: dict[str, int] = {}  # the last progress count said per stage
        self._errors: dict[str, str | None] = {}  # the first failed request's error per stage (said)

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start a step of this leaf now; `settle()` waits for it."""
        return self.flows.spawn(coro)

    async def settle(self) -> None:
        await self.flows.settle()

    def close(self) -> None:
        self.flows.cancel()
        self.window.close()

    def stage_counts(self, stage: str) -> dict[str, int]:
        return self.stages.setdefault(
            stage, {"requests": 0, "failed": 0, "truncated": 0, "unusable": 0,
                    "prompt_tokens": 0, "completion_tokens": 0},
        )

    async def ask(self, stage: str, request: TeacherRequest,
                  readable: Callable[[str], bool] | None = None) -> TeacherResponse:
        """One request of a stage, sent as soon as the window has room; its final reply.

        `readable(text)`: whether a reply parses to something. A 200 reply that parses to nothing is
        counted `unreadable` and asked again, up to UNREADABLE_RETRIES times, as a new request (its
        seed derived from the attempt), so a resumed run replays the same attempts from the ledger."""
        st = self.stage_counts(stage)
        self._asked[stage] = self._asked.get(stage, 0) + 1
        resp = await self._send(stage, request)
        if readable is not None:
            for attempt in range(1, UNREADABLE_RETRIES + 1):
                if not _unreadable(resp, readable):
                    break
                st["unreadable"] = st.get("unreadable", 0) + 1
                st["retried_unreadable"] = st.get("retried_unreadable", 0) + 1
                again = dataclasses.replace(request, seed=derive_seed(request.seed, "", "retry", attempt))
                resp = await self._send(stage, again)
            else:
                if _unreadable(resp, readable):
                    st["unreadable"] = st.get("unreadable", 0) + 1
        st["requests"] += 1
        st["prompt_tokens"] += resp.prompt_tokens
        st["completion_tokens"] += resp.completion_tokens
        if not resp.ok:
            st["failed"] += 1
            self._errors.setdefault(stage, resp.error)
        elif resp.finish_reason == "length":
            st["truncated"] += 1
        if self.progress is not None and st["requests"] % self.settings.batch_requests == 0:
            self._say(stage)
        return resp

    async def run(self, stage: str, requests: Sequence[TeacherRequest],
                  readable: Callable[[str], bool] | None = None) -> list[TeacherResponse]:
        """A whole stage at once (its replies in request order); TeacherError if none got through."""
        out = list(await asyncio.gather(*(self.ask(stage, r, readable) for r in requests)))
        if out and all(not r.ok for r in out):
            raise self._all_failed(stage, out[0].error)
        return out

    def finish(self) -> None:
        """After the leaf's last step: TeacherError when every request of a stage failed (the teacher
        is down or misconfigured), each judge's calibration ("text" when no verdict had
        probabilities), and each stage's last progress line."""
        for verdicts in self.verdicts:
            verdicts.finish()
        for stage, st in self.ordered_stages().items():
            if st["requests"] and st["failed"] == st["requests"]:
                raise self._all_failed(stage, self._errors.get(stage))
        if self.progress is not None:
            for stage in self.stages:
                self._say(stage)

    def _all_failed(self, stage: str, error: str | None) -> TeacherError:
        why = f" ({error})" if error else ""
        return TeacherError(f"{self.leaf.path}: every {stage} request failed{why}",
                            hint="check the teacher (--endpoint, --model) and its logs")

    def _say(self, stage: str) -> None:
        st = self.stages[stage]
        if self.progress is not None and self._shown.get(stage) != st["requests"]:
            self._shown[stage] = st["requests"]
            self.progress(stage, st["requests"], self._asked[stage])

    async def _send(self, stage: str, request: TeacherRequest) -> TeacherResponse:
        resp, faults = clean_reply(request, await self.window.ask(request))  # any backend, ledger or not
        st = self.stages[stage]
        for fault in faults:
            st[fault] = st.get(fault, 0) + 1
        return resp

    def faults(self) -> dict[str, int]:
        """Replies repaired, refused or asked again, by reason, over every stage."""
        total: Counter[str] = Counter()
        for st in self.stages.values():
            for name in FAULT_COUNTS:
                total[name] += st.get(name, 0)
        return {k: v for k, v in sorted(total.items()) if v}

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    def kept_unreadable(self, stage: str) -> None:
        """A judge's answer that could not be read, kept anyway (settings.unreadable_verdicts='keep')."""
        self.stages[stage]["unreadable_kept"] = self.stages[stage].get("unreadable_kept", 0) + 1

    def kept_advisory(self, stage: str) -> None:
        """A row a judge would have dropped, kept because verdicts are advisory (settings.judges)."""
        self.stages[stage]["advisory_kept"] = self.stages[stage].get("advisory_kept", 0) + 1

    def unjudged(self, stage: str) -> None:
        """A row kept without a verdict: the judge could not tell seeds from broken copies on this leaf."""
        self.stages[stage]["unjudged"] = self.stages[stage].get("unjudged", 0) + 1

    def unusable(self, stage: str) -> None:
        """A generation request whose answer held nothing usable (garbage, empty, wrong format)."""
        self.stages[stage]["unusable"] += 1

    def count(self, step: str, rows: int) -> None:
        """Record how many rows are left after a step of the funnel."""
        self.funnel[step] = self.funnel.get(step, 0) + rows

    def ordered_stages(self) -> dict[str, dict[str, int]]:
        """The stage counts in pipeline order, each judge's calibration after it: the order stages
        first sent in depends on which reply came first, the stats must not."""
        order = list(self.pipeline.stages)

        def rank(stage: str) -> tuple[int, int, str]:
            base = stage.removeprefix("calibrate_")
            return (order.index(base) if base in order else len(order), base != stage, stage)

        return {stage: self.stages[stage] for stage in sorted(self.stages, key=rank)}

    def stats(self, kept: int) -> dict[str, Any]:
        totals = {k: sum(s[k] for s in self.stages.values()) for k in ("requests", "failed", "prompt_tokens",
                                                                          "completion_tokens")}
        return {
            "leaf": self.leaf.path,
            "kind": self.leaf.kind,
            "pipeline": self.pipeline.name,
            "teacher": self.teacher.model_id,
            "generated": self.generated,
            "kept": kept,
            "dropped": dict(sorted(self.dropped.items())),
            "requests": totals["requests"],
            "failed_requests": totals["failed"],
            "prompt_tokens": totals["prompt_tokens"],
            "completion_tokens": totals["completion_tokens"],
            "seconds": round(time.monotonic() - self.started, 3),
            "stages": self.ordered_stages(),
            "funnel": funnel_in_order({**self.funnel, "kept": kept}),
            "faults": self.faults(),
            "calibration": {stage: cal.as_dict() for stage, cal in sorted(self.calibrations.items())},
            **self.extra,
        }


def _unreadable(resp: TeacherResponse, readable: Callable[[str], bool]) -> bool:
    return resp.ok and resp.finish_reason != OVERLONG and not readable(resp.text)


def protocol_member(teacher: Teacher, name: str, default: int) -> int:
    """A sizing member of the protocol (`batch_size`, `concurrency`). A teacher from outside labtax
    that implements only `complete` (a test double, a plugin) gets the one of the teacher it wraps as
    `.inner`, else `default`."""
    for _ in range(8):  # duck-typed wrappers of wrappers, bounded
        if hasattr(teacher, name):
            return int(getattr(teacher, name))
        if not hasattr(teacher, "inner"):
            break
        teacher = teacher.inner
    return default


def count_tokens_for(teacher: Teacher) -> Callable[[str], int]:
    """`teacher.count_tokens` (every labtax teacher and wrapper implements it: the protocol). A teacher
    from outside labtax that implements only `complete` (a test double, a plugin) gets the words x 1.3
    estimate, or the tokenizer of the teacher it wraps as `.inner`."""
    for _ in range(8):  # duck-typed wrappers of wrappers, bounded
        if hasattr(teacher, "count_tokens"):
            return teacher.count_tokens
        if not hasattr(teacher, "inner"):
            break
        teacher = teacher.inner
    return estimate_tokens


def token_counter(teacher: Teacher) -> str:
    """What knowledge chunks are sized with: "teacher tokenizer" (in process), "server tokenizer
    (/tokenize)" (an openai server that has vLLM's endpoint), or "estimate (words x 1.3)" for a
    teacher without one, so a run says so."""
    for _ in range(8):  # unwrap the ledger and lazy wrappers, bounded
        inner = getattr(teacher, "wrapped", None) or getattr(teacher, "inner", None)
        if inner is None:
            break
        teacher = inner
    if isinstance(teacher, TeacherBase):
        return teacher.token_counter()
    count = getattr(type(teacher), "count_tokens", None)  # a teacher from outside labtax
    return "estimate (words x 1.3)" if count is None else "teacher tokenizer"


def leaf_quota(settings: GenerationSettings, units: int) -> int:
    """The most samples a leaf keeps: samples_per_leaf per SEED_BASE units (seed examples for skills,
    seed examples x chunks for knowledge), at least one."""
    return max(1, math.ceil(settings.samples_per_leaf * max(1, units) / SEED_BASE))


def candidates_wanted(settings: GenerationSettings, quota: int) -> int:
    return math.ceil(quota * settings.overgenerate)


def bounded_requests(settings: GenerationSettings, wanted: int) -> tuple[int, bool]:
    """(requests to send, whether --max-requests-per-leaf or --budget-tokens cut them)."""
    limit = settings.request_limit()
    return (wanted, False) if wanted <= limit else (limit, True)


def block(label: str, text: str | None) -> str:
    """An optional labelled block for a prompt ('' when there is no text): blank lines around it."""
    return f"\n{label}:\n{text}\n" if text else ""
