"""Running a planned diff-generate (`execute`): under the output directory's lock (held by the
caller), generate the missing keys through a `LedgerTeacher` (completed requests are replayed, never
re-sent), store each leaf atomically as it finishes, then rebuild the sets from every leaf at head
and write the manifest last (`rebuild`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labtax.data import (
    FaultSummary,
    GenerationStats,
    LeafEntry,
    Manifest,
    RunSummary,
    SetFile,
    read_manifest,
    write_manifest,
)
from labtax.data.manifest import coverage_text
from labtax.data.names import funnel_in_order
from labtax.diff import read_blob
from labtax.errors import EXIT_FINDINGS, EXIT_OK, EXIT_TEACHER, LabtaxError, TeacherError, UsageError
from labtax.mix import mix
from labtax.mix.held_out import seed_test_samples
from labtax.mix.mix import prepare_leaf
from labtax.progress import VERBOSE, counting, note, verbosity
from labtax.sdg.fleet import LEAVES_PER_SLOT, QUEUED_WAVES, InFlight, LeafGate
from labtax.sdg.ledger import Ledger, is_io_failure
from labtax.sdg.ledger import io_error as ledger_io_error
from labtax.sdg.output_dir import LEAVES_DIR, LEDGER_FILE, output_lock, quarantine_manifest
from labtax.sdg.pipelines import LeafResult, generate_leaf
from labtax.sdg.pipelines.calibrate import calibration_text
from labtax.sdg.planning import LeafPlan, Plan, parse_leaf_at_head, plan_run
from labtax.sdg.replay import LedgerTeacher
from labtax.sdg.store import CorruptLeafError, LeafData, LeafStore, RawLeaf, ReadOnlyLeafStore
from labtax.teachers.metered import metered
from labtax.util.quoting import one_line, quote_path
from labtax.util.redact import redact

if TYPE_CHECKING:
    from labtax.sdg.settings import GenerationSettings
    from labtax.teachers.base import Teacher

@dataclass
class RunResult:
    plan: Plan
    output: Path
    manifest: Manifest | None = None  # set once the sets are rebuilt (`rebuild`)
    requests_sent: int = 0
    requests_replayed: int = 0
    tokens: int = 0
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)  # leaf paths whose generation failed
    leaf_errors: list[str] = field(default_factory=list)  # of those, the ones failed by their own input
    sets_rebuilt: bool = False
    faults: Counter[str] = field(default_factory=Counter)  # teacher faults by reason (see fault_summary)
    retried: int = 0  # requests the teacher client sent again (transport faults)
    unreadable: int = 0  # 200 replies that parsed to nothing
    failed_requests: int = 0  # requests that failed after every retry

    def fault_summary(self) -> FaultSummary:
        """For the manifest, the run summary and the job summary: how many requests were retried,
        failed or unreadable, and why."""
        return FaultSummary(self.retried, self.failed_requests, self.unreadable, dict(sorted(self.faults.items())))

    def count_requests(self, t: LedgerTeacher) -> None:
        """A leaf's requests, sent and replayed, its tokens and its transport faults."""
        self.requests_sent += t.sent
        self.requests_replayed += t.replayed
        self.tokens += t.tokens
        self.failed_requests += t.failed
        self.faults.update(t.faults)

    def count_faults(self, faults: Mapping[str, int]) -> None:
        """A leaf's pipeline faults (its stats' `faults`); "failed" is counted once, from the ledger wrapper."""
        for name, n in faults.items():
            if name == "unreadable":
                self.unreadable += n
            if name != "failed":
                self.faults[name] += n

    def summary(self) -> RunSummary:
        """The manifest's `run`: what this run cost."""
        return RunSummary(self.requests_sent, self.requests_replayed, self.tokens, self.seconds, self.fault_summary())


ProgressFn = Callable[[str], None]
StageFn = Callable[[str, int, int], None]  # (stage, done, total): a leaf's stage progress


@dataclass(frozen=True)
class LeafListener:
    """What a caller hears of each leaf as the run goes (`labtax generate`: its progress bars, its
    per-leaf files and report): the stage progress callback for a leaf path, and each leaf's end,
    with its result (stored) or the error that failed it."""

    stages: Callable[[str], StageFn | None]
    finished: Callable[[LeafPlan, LeafResult | None, LabtaxError | None], None]


def execute(
    plan: Plan,
    output: Path,
    *,
    taxonomy: Path,
    teacher: Teacher | None,
    settings: GenerationSettings,
    mix_settings: mix.MixSettings,
    ledger: Ledger,
    store: LeafStore,
    command: str = "diff-generate",
    leaf_concurrency: int = 4,
    progress: ProgressFn | None = None,
    listener: LeafListener | None = None,
) -> RunResult:
    """Generate what the plan says, store it, rebuild the sets and the manifest. The caller holds the
    output lock."""
    started = time.monotonic()
    if progress is not None:
        progress = _redacting(progress)
    _close_killed_runs(ledger)
    run_id = ledger.start_run(command=command, base=plan.base, head=plan.head, model=plan.model_id,
                              settings=plan.settings_record())
    ledger.update_memo(plan.memo_updates, remove=plan.memo_removals)
    result = RunResult(plan=plan, output=output)
    todo = plan.of("generate")
    for attempt in range(2):
        if todo:
            if teacher is None:
                raise UsageError("there are leaves to generate but no teacher")
            _generate(todo, plan, teacher, settings, ledger, store, run_id, taxonomy, result, leaf_concurrency,
                      progress, listener)
        result.seconds = time.monotonic() - started
        try:
            result.manifest, result.sets_rebuilt = rebuild(plan, output, store, mix_settings, result)
            break
        except BrokenLeaves as broken:
            # A file that passed the cheap (stat) check failed its checksum on loading: it was moved
            # aside; generate those leaves again (their requests replay from the ledger) and re-mix.
            if attempt:
                raise UsageError(f"leaf data keeps failing its checksum: {', '.join(broken.paths)}") from None
            todo = _to_regenerate(plan, broken.paths)
    _record_run(plan, store, ledger, run_id, result, started)
    return result


def _close_killed_runs(ledger: Ledger) -> None:
    """We hold the lock: a run the ledger still calls "running" was killed."""
    for run in ledger.runs():
        if run["status"] == "running":
            ledger.finish_run(run["id"], status="killed", requests_sent=run["requests_sent"],
                              requests_replayed=run["requests_replayed"], tokens=run["tokens"],
                              seconds=run["seconds"] or 0.0)


def _generate(todo: list[LeafPlan], plan: Plan, teacher: Teacher, settings: GenerationSettings, ledger: Ledger,
              store: LeafStore, run_id: int, taxonomy: Path, result: RunResult, leaf_concurrency: int,
              progress: ProgressFn | None, listener: LeafListener | None) -> None:
    """Generate and store the leaves of `todo`, counting into `result`."""
    # One progress line per finished leaf: on a terminal they also drive a bar (rate, ETA).
    # And requests and tokens across leaves, a line every 10 s at least (teachers/metered.py).
    with counting(len(todo), "diff-generate", "leaf", progress) as per_leaf, \
            metered(teacher, plan.estimated_requests, plan.model_id, progress is not None) as counted:
        asyncio.run(_generate_all(todo, counted, settings, ledger, store, run_id, taxonomy, result,
                                  leaf_concurrency, per_leaf, _listener(progress, listener), plan.forced))


def _to_regenerate(plan: Plan, paths: list[str]) -> list[LeafPlan]:
    """The leaves whose store files broke, planned again for generation from their YAML at head."""
    todo = []
    for lp in plan.leaves:
        if lp.path in paths:
            lp.action, lp.reason = "generate", "store file failed its checksum"
            if not plan.forced:  # a forced plan's leaves were read from their folder, not from git
                lp.leaf = parse_leaf_at_head(lp.path, _read_at(plan, lp.path))
            todo.append(lp)
    return todo


def _record_run(plan: Plan, store: LeafStore, ledger: Ledger, run_id: int, result: RunResult, started: float) -> None:
    """The ledger's record of the finished run: the store files verified, the leaves, the totals."""
    for lp in plan.of("generate"):
        if lp.key and lp.path not in result.failed:
            store.verify(lp.key, plan.verified)
    ledger.update_verified({k: v for k, v in plan.verified.items() if store.exists(k)})
    assert result.manifest is not None  # execute rebuilt the sets or raised
    ledger.record_leaves(run_id, result.manifest.leaves)
    result.seconds = time.monotonic() - started
    ledger.finish_run(run_id, status="failed" if result.failed else "ok", requests_sent=result.requests_sent,
                      requests_replayed=result.requests_replayed, tokens=result.tokens, seconds=result.seconds)


def _stage_lines(path: str, progress: ProgressFn | None) -> StageFn | None:
    """--verbose: a line per finished stage slice of a leaf, on stderr (`progress` counts whole leaves)."""
    if progress is None or verbosity() < VERBOSE:
        return None
    return lambda stage, done, total: note(f"  {quote_path(path)}: {stage} {done}/{total}", VERBOSE)


def _listener(progress: ProgressFn | None, listener: LeafListener | None) -> LeafListener:
    """The caller's listener, else diff-generate's: --verbose stage lines, no one told of a leaf's end."""
    return listener or LeafListener(lambda path: _stage_lines(path, progress), lambda lp, res, exc: None)


def _redacting(progress: ProgressFn) -> ProgressFn:
    """Every progress line through `redact`: an error text may quote a server's reply."""
    return lambda line: progress(one_line(redact(line)))


async def _generate_all(todo: list[LeafPlan], teacher: Teacher, settings: GenerationSettings, ledger: Ledger,
                        store: LeafStore, run_id: int, taxonomy: Path, result: RunResult, concurrency: int,
                        progress: ProgressFn | None, listener: LeafListener, forced: bool) -> None:
    # Record progress per request for a server teacher (it bounds its own concurrency); in whole
    # forward-pass batches for an in-process one, so batching is kept.
    in_flight = InFlight(teacher)
    # `concurrency` leaves at least; more while the teacher has room (labtax/sdg/fleet.py).
    width = max(teacher.concurrency, teacher.batch_size)
    leaves = _LeafRuns(LedgerTeacher(in_flight, ledger, run_id=run_id, batch_size=teacher.batch_size),
                       LeafGate(in_flight, target=QUEUED_WAVES * width, floor=concurrency,
                                ceiling=max(concurrency, LEAVES_PER_SLOT * width)),
                       asyncio.Event(), teacher.model_id, settings, store, taxonomy, result, progress, listener,
                       forced)
    try:
        await asyncio.gather(*(leaves.run(lp) for lp in todo))
    finally:
        await teacher.aclose()
        _add_transport_faults(teacher, result)


@dataclass
class _LeafRuns:
    """Generating one leaf after another under the gate, each stored as soon as it is done."""

    base: LedgerTeacher
    gate: LeafGate
    # A whole stage failing means the teacher is down or misconfigured: start no further leaf (the
    # ones in flight finish), so a dead endpoint costs one leaf's retries, not every leaf's.
    teacher_down: asyncio.Event
    model_id: str
    settings: GenerationSettings
    store: LeafStore
    taxonomy: Path
    result: RunResult
    progress: ProgressFn | None
    listener: LeafListener
    # A forced plan (`labtax generate`): the user named every leaf, so a teacher failure fails only
    # its own and the others go on.
    forced: bool

    def say(self, line: str) -> None:
        if self.progress:
            self.progress(line)

    async def run(self, lp: LeafPlan) -> None:
        assert lp.leaf is not None and lp.key is not None
        result = self.result
        async with self.gate:
            if self.teacher_down.is_set():
                result.failed.append(lp.path)
                return
            t = self.base.for_leaf(lp.key)
            began = time.monotonic()
            try:
                res = await generate_leaf(lp.leaf, t, self.settings, taxonomy_root=self.taxonomy,
                                          progress=self.listener.stages(lp.path))
            except TeacherError as exc:
                result.failed.append(lp.path)
                if self.forced:  # every leaf was named: the others go on
                    lp.error = str(exc)
                    self.say(f"failed    {quote_path(lp.path)}: {exc}")
                    self.listener.finished(lp, None, exc)
                    return
                if not self.teacher_down.is_set():
                    self.say(f"failed    {quote_path(lp.path)}: {exc}; starting no further leaf")
                self.teacher_down.set()
                return
            except LabtaxError as exc:  # this leaf's own problem (an unreadable document): skip it
                result.failed.append(lp.path)
                result.leaf_errors.append(lp.path)
                lp.error = str(exc)
                self.say(f"failed    {quote_path(lp.path)}: {exc}")
                self.listener.finished(lp, None, exc)
                return
            finally:
                result.count_requests(t)
            self.store_leaf(lp, res, t, began)

    def store_leaf(self, lp: LeafPlan, res: LeafResult, t: LedgerTeacher, began: float) -> None:
        """Count the leaf's faults; store it unless a request failed (the next run retries just those)."""
        assert lp.leaf is not None and lp.key is not None
        stats = dict(res.stats)
        self.result.count_faults(stats.get("faults") or {})
        if t.failed:
            self.result.failed.append(lp.path)
            why = f"{t.failed} teacher requests failed; rerun to retry them"
            self.say(f"failed    {quote_path(lp.path)}: {why}")
            if self.forced:
                lp.error = why
            self.listener.finished(lp, None, TeacherError(why))
            return
        meta = {
            "kind": lp.leaf.kind, "generated_for": lp.path, "teacher": self.model_id,
            "tokens": t.tokens, "seconds": round(time.monotonic() - began, 3),
            "requests": t.sent + t.replayed, "stats": stats,
        }
        prepared = prepare_leaf(lp.leaf.kind, res.samples, seed_test_samples(lp.leaf, res.shown) + res.held_out)
        self.store.put(LeafData(lp.key, prepared.samples, prepared.test, meta, prepared.index.to_json()))
        self.say(f"generated {quote_path(lp.path)}: {len(res.samples)} samples, {t.sent} requests sent, "
                 f"{t.replayed} replayed{funnel_text(stats)}{calibration_text(stats)}")
        self.listener.finished(lp, res, None)


def funnel_text(stats: dict[str, Any]) -> str:
    """'; funnel asked 50 -> parsed 48 -> ... -> kept 20' plus a note when the request bound bound."""
    funnel = funnel_in_order(stats.get("funnel") or {})
    out = ("; funnel " + " -> ".join(f"{k} {v}" for k, v in funnel.items())) if funnel else ""
    out += coverage_text(GenerationStats.from_stats(stats))
    if stats.get("document_readers"):
        out += "; documents read by " + ", ".join(f"{k} {v}" for k, v in stats["document_readers"].items())
    if str(stats.get("chunks_sized_by", "")).startswith("estimate"):
        out += "; chunks sized by the words x 1.3 estimate (no tokenizer for this teacher)"
    if stats.get("max_requests_bound"):
        out += (f"; request limit bound (--max-requests-per-leaf, --budget-tokens): "
                f"{stats['stages'][next(iter(stats['stages']))]['requests']} of {stats['requests_wanted']} requests sent")
    return out


def _add_transport_faults(teacher: Teacher, result: RunResult) -> None:
    """The client's own counts (openai: retries and failed attempts by reason), when it has them."""
    counted = teacher.stats()  # nothing from a teacher that counts nothing (or a lazy one never built)
    result.retried += counted.retries
    for reason, n in counted.faults.items():
        result.faults[reason] += n


class BrokenLeaves(Exception):
    """Leaves whose store files vanished or failed their checksum while the sets were rebuilt."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(", ".join(paths))
        self.paths = paths


def _read_at(plan: Plan, path: str) -> bytes:
    return read_blob(plan.taxonomy, plan.head, path)


@dataclass(frozen=True)
class _LeafRecord:
    """A leaf's record for its manifest entry: the set rows it holds and what generating it took."""

    counts: Mapping[str, int]
    tokens: int
    seconds: float
    generation: GenerationStats


@dataclass(frozen=True)
class _Mixed:
    """The sets as this rebuild left them: their files, the two-step make-up, each leaf's record."""

    sets: Mapping[str, SetFile]
    steps: Mapping[str, int]
    leaves: Mapping[str, _LeafRecord]


def rebuild(plan: Plan, output: Path, store: LeafStore, mix_settings: mix.MixSettings,
            result: RunResult | None = None) -> tuple[Manifest, bool]:
    """Rebuild the sets from every leaf at head with data in the store; write the manifest last.
    Skips rewriting the sets when their inputs are unchanged and the files are intact."""
    failed = set(result.failed if result else [])
    current = [lp for lp in plan.leaves if lp.action in ("generate", "reuse") and lp.key and lp.path not in failed]
    fingerprint = mix.sets_fingerprint([(lp.path, lp.kind, lp.key or "") for lp in current], mix_settings)
    previous = read_manifest(output)
    if previous is not None and previous.fingerprint == fingerprint and mix.sets_intact(output, previous.sets, full=True):
        mixed, rebuilt = _sets_as_recorded(previous, current), False
    else:
        mixed, rebuilt = _mix_from_store(current, output, store, mix_settings), True
    manifest = Manifest(
        base=plan.base, head=plan.head, base_ref=plan.base_ref, head_ref=plan.head_ref,
        teacher_model=plan.model_id, settings=plan.settings_record(), mix=plan.mix_settings.as_dict(), sets=mixed.sets,
        fingerprint=fingerprint, leaves=_leaf_entries(plan, failed, mixed),
        phase1_steps=mixed.steps or None,  # --phase1 two-step: the step sets' make-up
        run=result.summary() if result else RunSummary(0, 0, 0, 0.0, FaultSummary()),
    )
    write_manifest(output, manifest)
    return manifest, rebuilt


def _mix_from_store(current: list[LeafPlan], output: Path, store: LeafStore, mix_settings: mix.MixSettings) -> _Mixed:
    """Load every current leaf's stored data, mix the sets and write them. BrokenLeaves names the
    leaves whose store file vanished, failed its checksum or has another store format."""
    inputs: list[mix.MixLeaf] = []
    cache: dict[str, RawLeaf] = {}
    broken: list[str] = []
    records: dict[str, tuple[int, float, GenerationStats]] = {}
    for lp in current:
        assert lp.key is not None
        if lp.key not in cache:
            try:
                cache[lp.key] = store.load_raw(lp.key)
            except (KeyError, CorruptLeafError):
                broken.append(lp.path)
                continue
        data = cache[lp.key]
        index = mix.LeafIndex.from_json(data.index)
        if index is None:  # written by another store format: regenerate
            broken.append(lp.path)
            continue
        records[lp.path] = (int(data.meta.get("tokens") or 0), float(data.meta.get("seconds") or 0.0),
                            GenerationStats.from_stats(data.meta.get("stats") or {}))
        inputs.append(mix.MixLeaf(lp.path, lp.kind, lp.key, data.data, data.train_span, data.test_span, index))
    if broken:
        raise BrokenLeaves(broken)
    sets = mix.build_sets(inputs, mix_settings)
    files = mix.write_sets(output, sets)
    return _Mixed(files, sets.step_counts, {path: _LeafRecord(sets.counts.get(path, {}), *record)
                                            for path, record in records.items()})


def _sets_as_recorded(previous: Manifest, current: list[LeafPlan]) -> _Mixed:
    """The sets are intact and their inputs unchanged: each leaf's record comes from the last manifest."""
    entries = {e.path: e for e in previous.leaves}
    records: dict[str, _LeafRecord] = {}
    for lp in current:
        e = entries.get(lp.path)
        records[lp.path] = (_LeafRecord(e.counts, e.tokens, e.seconds, e.generation or GenerationStats())
                            if e is not None else _LeafRecord({}, 0, 0.0, GenerationStats()))
    return _Mixed(previous.sets, previous.phase1_steps or {}, records)


def _leaf_entries(plan: Plan, failed: set[str], mixed: _Mixed) -> tuple[LeafEntry, ...]:
    """One manifest entry per planned leaf, in plan order."""
    generated_now = {lp.path for lp in plan.of("generate")} - failed
    entries: list[LeafEntry] = []
    for lp in plan.leaves:
        if lp.action == "invalid" or lp.path in failed:
            entries.append(LeafEntry(lp.path, lp.key, lp.kind, "invalid" if lp.action == "invalid" else "failed",
                                     lp.changed, {}, 0, 0.0, error=redact(lp.error) if lp.error else None))
        elif lp.action == "drop":
            entries.append(LeafEntry(lp.path, lp.key, lp.kind, "dropped", False, {}, 0, 0.0))
        else:
            r = mixed.leaves.get(lp.path) or _LeafRecord({}, 0, 0.0, GenerationStats())
            entries.append(LeafEntry(lp.path, lp.key, lp.kind, "generated" if lp.path in generated_now else "reused",
                                     lp.changed, r.counts, r.tokens, r.seconds, generation=r.generation))
    return tuple(entries)


@contextmanager
def ledger_failures(output: Path) -> Iterator[None]:
    """A full or failing disk under the ledger: one line, exit 2; every committed record is kept, so
    the next run continues (a damaged ledger file is handled by Ledger itself)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if is_io_failure(exc):
            raise ledger_io_error(output / LEDGER_FILE, exc) from None
        raise


def diff_generate(
    taxonomy: Path,
    output: Path,
    *,
    base: str | None,
    head: str | None,
    settings: GenerationSettings,
    mix_settings: mix.MixSettings,
    teacher: Teacher,
    dry_run: bool = False,
    wait: float = 0.0,
    progress: ProgressFn | None = None,
    untrusted_store: bool = False,
) -> Plan | RunResult:
    """Plan (and, unless `dry_run`, run) one diff-generate. A dry run takes no lock, writes nothing and
    returns the Plan; a real run holds the output lock throughout and returns a RunResult.
    `untrusted_store` (a store restored from a CI cache): every store file is re-read and every record
    parsed and checked before it is reused; the ledger's record of verified files is not trusted."""
    store = LeafStore(output / LEAVES_DIR, untrusted=untrusted_store)
    if dry_run:
        # Read-only: a dry run creates, migrates and repairs nothing.
        ledger = Ledger(output / LEDGER_FILE, readonly=True) if (output / LEDGER_FILE).exists() else None
        try:
            return plan_run(taxonomy, output, base=base, head=head, model_id=teacher.model_id, settings=settings,
                            mix_settings=mix_settings, ledger=ledger, store=ReadOnlyLeafStore(store.root),
                            fetch=False)
        finally:
            if ledger is not None:
                ledger.close()
    with ledger_failures(output), output_lock(output, wait=wait), Ledger(output / LEDGER_FILE) as ledger:
        quarantine_manifest(output)
        plan = plan_run(taxonomy, output, base=base, head=head, model_id=teacher.model_id, settings=settings,
                        mix_settings=mix_settings, ledger=ledger, store=store)
        return execute(plan, output, taxonomy=taxonomy, teacher=teacher, settings=settings,
                       mix_settings=mix_settings, ledger=ledger, store=store, progress=progress)


def exit_code(outcome: Plan | RunResult) -> int:
    """EXIT_TEACHER when the teacher failed a leaf, 1 when a leaf at head is invalid or its own input (a document)
    cannot be read, else 0."""
    plan = outcome if isinstance(outcome, Plan) else outcome.plan
    if isinstance(outcome, RunResult) and set(outcome.failed) - set(outcome.leaf_errors):
        return EXIT_TEACHER
    if isinstance(outcome, RunResult) and outcome.leaf_errors:
        return EXIT_FINDINGS  # a leaf's own input (its document) failed it: a leaf error, not the teacher
    return EXIT_FINDINGS if plan.of("invalid") else EXIT_OK
