"""`labtax diff-generate` and `labtax gc`: generate only what changed, reuse everything else, re-mix.

The leaf store is the source of truth; the diff only narrows what must be looked at.

Planning (`plan_run`):
  1. the diff between base and head says which leaves were added, modified, renamed or deleted;
  2. every leaf at head gets its content key. A key is recomputed (parse + read documents) only when
     the diff reports the leaf, or its qna.yaml blob, its folder or its local document folder differ
     from what the ledger's memo (`leaf_keys`) saw last time; otherwise the memo's key is used. So a
     no-op run on 1,000 leaves parses nothing and reads no document;
  3. a leaf at head whose key is in the store (checksum verified) is reused; otherwise it is
     generated, whether or not the diff reported it (the first run with a non-empty base, a
     corrupted store file, changed settings or teacher): the sets must hold every leaf at head;
  4. deleted leaves, and leaves of the previous manifest no longer at head, are dropped from the
     sets; their data stays in the store until `labtax gc`.

Running (`execute`): under the output directory's lock, generate the missing keys through a
`LedgerTeacher` (completed requests are replayed, never re-sent), store each leaf atomically as it
finishes, then rebuild the sets from every leaf at head and write the manifest last.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from labtax.errors import LabtaxError, LockedError, TeacherError, UsageError
from labtax.sdg import mix
from labtax.sdg.keys import content_key, environment_digest, files_digest
from labtax.sdg.ledger import Ledger, LedgerTeacher, MemoRow
from labtax.sdg.store import CorruptLeafError, LeafData, LeafStore, RawLeaf

if TYPE_CHECKING:
    from labtax.diff.gitio import Taxonomy
    from labtax.sdg.settings import GenerationSettings
    from labtax.sdg.teachers.base import Teacher
    from labtax.taxonomy.model import Leaf

Action = Literal["generate", "reuse", "drop", "invalid"]
LEDGER_FILE = "ledger.sqlite"
LOCK_FILE = ".lock"
LEAVES_DIR = "leaves"
MANIFEST_FORMAT = "labtax-manifest/1"


# ------------------------------------------------------------------------------------- locking


@contextmanager
def output_lock(output: Path, *, wait: float = 0.0) -> Iterator[None]:
    """Hold `<output>/.lock` (fcntl.flock, released by the kernel even on SIGKILL). Raises LockedError
    when another run holds it and it is not released within `wait` seconds."""
    output.mkdir(parents=True, exist_ok=True)
    path = output / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
                    raise LockedError(
                        f"output directory {output} is in use by another labtax run (pid {holder})",
                        hint="wait for it to finish, or pass --wait SECONDS",
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# ----------------------------------------------------------------------------------- snapshots


class Snapshot:
    """The leaves at head with cheap change detectors: the qna.yaml blob id and folder fingerprints
    (git tree ids at a commit; names, sizes and mtimes in the working tree)."""

    def __init__(self, tax: Taxonomy, commit: str | None) -> None:
        from labtax.diff.gitio import blob_sha, leaf_files_at, split_z

        self.tax = tax
        self.commit = commit
        self.blobs: dict[str, str] = {}
        self.data: dict[str, bytes] = {}
        self._trees: dict[str, str] = {}
        self._fp_cache: dict[str, str] = {}
        if commit is None:
            for _sha, path in leaf_files_at(tax, None):
                raw = (tax.worktree / tax.to_repo(path)).read_bytes()
                self.data[path] = raw
                self.blobs[path] = blob_sha(raw)
        else:
            args = ["ls-tree", "-r", "-t", "-z", "--full-tree", commit]
            if tax.prefix:
                args += ["--", tax.prefix]
            for item in split_z(tax.git(*args)):
                meta, _, repo_path = item.partition("\t")
                parts = meta.split()
                if len(parts) != 3:
                    continue
                rel = tax.from_repo(repo_path)
                if rel is None:
                    continue
                if parts[1] == "tree":
                    self._trees[rel] = parts[2]
                elif parts[1] == "blob" and _is_leaf(rel):
                    self.blobs[rel] = parts[2]

    @property
    def paths(self) -> list[str]:
        return sorted(self.blobs)

    def read(self, paths: list[str]) -> dict[str, bytes]:
        missing = [p for p in paths if p not in self.data]
        if missing and self.commit is not None:
            from labtax.diff.gitio import BlobReader

            reader = BlobReader(self.tax)
            for p in missing:
                raw = reader.at(self.commit, self.tax.to_repo(p))
                if raw is not None:
                    self.data[p] = raw
        return {p: self.data[p] for p in paths if p in self.data}

    def fingerprint(self, dirs: list[str]) -> str:
        return hashlib.sha256("\0".join(self._dir_fp(d) for d in dirs).encode()).hexdigest()

    def _dir_fp(self, rel: str) -> str:
        if rel in self._fp_cache:
            return self._fp_cache[rel]
        if self.commit is not None:
            fp = self._trees.get(rel, "-")
        else:
            h = hashlib.sha256()
            root = self.tax.worktree / self.tax.to_repo(rel)
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if d != ".git")
                for name in sorted(filenames):
                    p = Path(dirpath) / name
                    try:
                        st = p.stat()
                    except OSError:
                        continue
                    h.update(f"{p.relative_to(root).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            fp = h.hexdigest()
        self._fp_cache[rel] = fp
        return fp


def _is_leaf(rel: str) -> bool:
    from labtax.diff.gitio import is_leaf_path

    return is_leaf_path(rel)


def watched_dirs(leaf: Leaf) -> list[str]:
    """Folders whose change may change the leaf's key without its qna.yaml changing: the leaf's own
    folder and, for a knowledge leaf, a document folder inside the taxonomy (`document.repo` a path)."""
    from labtax.sdg.documents import URL_PREFIXES

    dirs = [leaf.leaf_dir]
    doc = leaf.data.get("document")
    if isinstance(doc, dict):
        repo = str(doc.get("repo") or "")
        if repo and not repo.startswith(URL_PREFIXES):
            dirs.append(PurePosixPath(repo).as_posix().strip("/"))
    return dirs


# -------------------------------------------------------------------------------------- plans


@dataclass
class LeafPlan:
    path: str
    kind: str
    action: Action
    key: str | None = None
    changed: bool = False  # the diff reported it added, modified or renamed in this run
    change: str | None = None  # the diff's status, when it reported one
    old_path: str | None = None
    reason: str = ""
    estimated_requests: int = 0
    recorded_requests: int = 0  # responses already in the ledger for this key (a resume)
    error: str | None = None
    leaf: Leaf | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "kind": self.kind, "action": self.action, "key": self.key,
            "changed": self.changed, "change": self.change, "old_path": self.old_path, "reason": self.reason,
            "estimated_requests": self.estimated_requests, "recorded_requests": self.recorded_requests,
            "error": self.error,
        }


@dataclass
class Plan:
    base: str
    head: str | None
    base_ref: str | None
    head_ref: str | None
    model_id: str
    settings: dict[str, Any]
    mix_settings: dict[str, Any]
    env: str
    leaves: list[LeafPlan]
    max_tokens: int
    memo_updates: dict[str, MemoRow] = field(default_factory=dict, repr=False)
    memo_removals: list[str] = field(default_factory=list, repr=False)
    verified: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    taxonomy: Path = field(default=Path("."), repr=False)

    def of(self, action: Action) -> list[LeafPlan]:
        return [lp for lp in self.leaves if lp.action == action]

    @property
    def nothing_to_generate(self) -> bool:
        return not self.of("generate")

    @property
    def estimated_requests(self) -> int:
        return sum(lp.estimated_requests for lp in self.of("generate"))

    @property
    def estimated_tokens(self) -> int:
        """An upper bound on completion tokens: every request answered at full length."""
        return self.estimated_requests * self.max_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base, "head": self.head, "teacher_model": self.model_id, "settings": self.settings,
            "summary": {a: len(self.of(a)) for a in ("generate", "reuse", "drop", "invalid")},
            "estimated_requests": self.estimated_requests, "estimated_completion_tokens": self.estimated_tokens,
            "leaves": [lp.to_dict() for lp in self.leaves],
        }


def environment(model_id: str, settings: GenerationSettings) -> str:
    from labtax.sdg.pipelines import pipeline_files

    digest = f"{files_digest(pipeline_files())}|store-format-{mix.STORE_FORMAT}"
    return environment_digest(pipeline_digest=digest, model_id=model_id, settings=settings.as_dict())


def plan_run(
    taxonomy: Path,
    output: Path,
    *,
    base: str | None,
    head: str | None,
    model_id: str,
    settings: GenerationSettings,
    mix_settings: mix.MixSettings,
    ledger: Ledger | None,
    store: LeafStore,
) -> Plan:
    """Decide, for every leaf at head and every leaf that left, what this run does with it."""
    from labtax.diff import diff_taxonomy
    from labtax.diff.gitio import open_taxonomy
    from labtax.sdg.pipelines import estimate_requests

    diff = diff_taxonomy(taxonomy, base, head)
    changes = {c.path: c for c in diff.changes}
    env = environment(model_id, settings)
    memo = ledger.memo() if ledger is not None else {}
    verified = ledger.verified() if ledger is not None else {}
    plans: list[LeafPlan] = []
    memo_updates: dict[str, MemoRow] = {}

    with open_taxonomy(taxonomy) as tax:
        snap = Snapshot(tax, diff.head)
        keys: dict[str, str] = {}
        kinds: dict[str, str] = {}
        to_parse: list[str] = []
        for path in snap.paths:
            change = changes.get(path)
            row = memo.get(path)
            fresh = (
                row is not None and row.blob == snap.blobs[path] and row.env == env
                and row.tree == snap.fingerprint(json.loads(row.dirs))
            )
            if fresh and change is None and row is not None:
                keys[path], kinds[path] = row.key, row.kind
            else:
                to_parse.append(path)

        parsed: dict[str, Leaf] = {}
        errors: dict[str, str] = {}
        raw = snap.read(to_parse)
        for path in to_parse:
            try:
                leaf = _parse(path, raw.get(path))
                docs = _documents(leaf, taxonomy)
            except (LabtaxError, ValueError, OSError) as exc:  # LeafError, a bad document reference
                errors[path] = str(exc)
                continue
            parsed[path] = leaf
            keys[path], kinds[path] = content_key(leaf, docs, env), leaf.kind
            dirs = watched_dirs(leaf)
            memo_updates[path] = MemoRow(snap.blobs[path], snap.fingerprint(dirs), env, keys[path], leaf.kind,
                                         json.dumps(dirs))

        recorded_cache: dict[str, int] = {}
        planned_keys: set[str] = set()
        for path in snap.paths:
            change = changes.get(path)
            changed = change is not None and change.status in ("added", "modified", "renamed")
            lp = LeafPlan(path=path, kind=kinds.get(path, _kind(path)), action="reuse", changed=changed,
                          change=change.status if change else None, old_path=change.old_path if change else None)
            if path in errors:
                lp.action, lp.error, lp.reason = "invalid", errors[path], "cannot be read"
                plans.append(lp)
                continue
            lp.key = keys[path]
            if lp.key in planned_keys:
                lp.reason = "same content as another leaf generated in this run"
            elif store.verify(lp.key, verified):
                lp.reason = "renamed, content unchanged" if change and change.status == "renamed" else (
                    "content key already in the store" if changed else "unchanged")
            else:
                lp.action = "generate"
                lp.reason = change.status if changed and change else "not in the store"
                leaf = parsed.get(path) or _parse(path, snap.read([path]).get(path))
                lp.leaf = leaf
                lp.estimated_requests = estimate_requests(leaf, settings)
                if ledger is not None:
                    if lp.key not in recorded_cache:
                        recorded_cache[lp.key] = ledger.count_responses(lp.key)
                    lp.recorded_requests = recorded_cache[lp.key]
                planned_keys.add(lp.key)
            plans.append(lp)

    # Dropped: deleted in the diff, or in the previous manifest and no longer at head.
    current = set(snap.paths)
    renamed_from = {c.old_path for c in diff.changes if c.status == "renamed" and c.old_path}
    previous = mix.read_manifest(output) or {}
    prev_keys = {e["path"]: e.get("key") for e in previous.get("leaves") or [] if e.get("status") != "dropped"}
    gone = {c.path for c in diff.changes if c.status == "deleted"} | set(prev_keys)
    for path in sorted(gone - current - renamed_from):
        row = memo.get(path)
        plans.append(LeafPlan(path=path, kind=_kind(path), action="drop", key=prev_keys.get(path) or (
            row.key if row else None), change="deleted" if path in changes else None,
            reason="deleted" if path in changes else "no longer at head"))
    removals = sorted(set(memo) - current)
    plans.sort(key=lambda lp: lp.path)
    return Plan(
        base=diff.base, head=diff.head, base_ref=base, head_ref=head, model_id=model_id,
        settings=settings.as_dict(), mix_settings=mix_settings.as_dict(), env=env, leaves=plans,
        max_tokens=settings.max_tokens, memo_updates=memo_updates, memo_removals=removals,
        verified=verified, taxonomy=Path(taxonomy),
    )


def _kind(path: str) -> str:
    return PurePosixPath(path).parts[0]


def _parse(path: str, raw: bytes | None) -> Leaf:
    from labtax.taxonomy import parse_leaf

    if raw is None:
        raise UsageError(f"{path}: cannot be read at head")
    return parse_leaf(path, raw)


def _documents(leaf: Leaf, taxonomy: Path) -> list[str]:
    if leaf.kind != "knowledge" or not leaf.data.get("document"):
        return []
    from labtax.sdg.documents import load_documents

    return [f"{d.path}\0{d.text}" for d in load_documents(leaf, taxonomy)]


# ------------------------------------------------------------------------------------ execution


@dataclass
class RunResult:
    plan: Plan
    output: Path
    manifest: dict[str, Any]
    requests_sent: int = 0
    requests_replayed: int = 0
    tokens: int = 0
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)  # leaf paths whose generation failed
    sets_rebuilt: bool = False


ProgressFn = Callable[[str], None]


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
) -> RunResult:
    """Generate what the plan says, store it, rebuild the sets and the manifest. The caller holds the
    output lock."""
    started = time.monotonic()
    for run in ledger.runs():
        if run["status"] == "running":  # we hold the lock: a "running" row is a killed run
            ledger.finish_run(run["id"], status="killed", requests_sent=run["requests_sent"],
                              requests_replayed=run["requests_replayed"], tokens=run["tokens"],
                              seconds=run["seconds"] or 0.0)
    run_id = ledger.start_run(command=command, base=plan.base, head=plan.head, model=plan.model_id,
                              settings=plan.settings)
    ledger.update_memo(plan.memo_updates, remove=plan.memo_removals)
    result = RunResult(plan=plan, output=output, manifest={})
    todo = plan.of("generate")
    for attempt in range(2):
        if todo:
            if teacher is None:
                raise UsageError("there are leaves to generate but no teacher")
            asyncio.run(_generate_all(todo, teacher, settings, ledger, store, run_id, taxonomy, result,
                                      leaf_concurrency, progress))
        result.seconds = time.monotonic() - started
        try:
            result.manifest, result.sets_rebuilt = rebuild(plan, output, store, mix_settings, result)
            break
        except BrokenLeaves as broken:
            # A file that passed the cheap (stat) check failed its checksum on loading: it was moved
            # aside; generate those leaves again (their requests replay from the ledger) and re-mix.
            if attempt:
                raise UsageError(f"leaf data keeps failing its checksum: {', '.join(broken.paths)}") from None
            todo = []
            for lp in plan.leaves:
                if lp.path in broken.paths:
                    lp.action, lp.reason = "generate", "store file failed its checksum"
                    lp.leaf = _parse(lp.path, _read_at(plan, lp.path))
                    todo.append(lp)
    for lp in plan.of("generate"):
        if lp.key and lp.path not in result.failed:
            store.verify(lp.key, plan.verified)
    ledger.update_verified({k: v for k, v in plan.verified.items() if store.exists(k)})
    ledger.record_leaves(run_id, result.manifest["leaves"])
    result.seconds = time.monotonic() - started
    ledger.finish_run(run_id, status="failed" if result.failed else "ok", requests_sent=result.requests_sent,
                      requests_replayed=result.requests_replayed, tokens=result.tokens, seconds=result.seconds)
    return result


async def _generate_all(todo: list[LeafPlan], teacher: Teacher, settings: GenerationSettings, ledger: Ledger,
                        store: LeafStore, run_id: int, taxonomy: Path, result: RunResult, concurrency: int,
                        progress: ProgressFn | None) -> None:
    from labtax.sdg.mix import prepare_leaf, seed_test_samples
    from labtax.sdg.pipelines import generate_leaf

    # Record progress per request for a server teacher (it bounds its own concurrency); in whole
    # forward-pass batches for an in-process one, so batching is kept.
    batch = getattr(teacher, "batch_size", None) or (1 if hasattr(teacher, "concurrency") else 64)
    base = LedgerTeacher(teacher, ledger, run_id=run_id, batch_size=int(batch))
    sem = asyncio.Semaphore(max(1, concurrency))
    # A whole stage failing means the teacher is down or misconfigured: start no further leaf (the
    # ones in flight finish), so a dead endpoint costs one leaf's retries, not every leaf's.
    teacher_down = asyncio.Event()

    async def one(lp: LeafPlan) -> None:
        assert lp.leaf is not None and lp.key is not None
        async with sem:
            if teacher_down.is_set():
                result.failed.append(lp.path)
                return
            t = base.for_leaf(lp.key)
            began = time.monotonic()
            try:
                res = await generate_leaf(lp.leaf, t, settings, taxonomy_root=taxonomy)
            except TeacherError as exc:
                result.failed.append(lp.path)
                if not teacher_down.is_set() and progress:
                    progress(f"failed    {lp.path}: {exc}; starting no further leaf")
                teacher_down.set()
                return
            except LabtaxError as exc:  # this leaf's own problem (an unreadable document): skip it
                result.failed.append(lp.path)
                if progress:
                    progress(f"failed    {lp.path}: {exc}")
                return
            finally:
                result.requests_sent += t.sent
                result.requests_replayed += t.replayed
                result.tokens += t.tokens
            stats = dict(res.stats)
            if t.failed:
                # Not stored: the next run retries just the failed requests (the rest replay).
                result.failed.append(lp.path)
                if progress:
                    progress(f"failed    {lp.path}: {t.failed} teacher requests failed; rerun to retry them")
                return
            meta = {
                "kind": lp.leaf.kind, "generated_for": lp.path, "teacher": teacher.model_id,
                "tokens": t.tokens, "seconds": round(time.monotonic() - began, 3),
                "requests": t.sent + t.replayed, "stats": stats,
            }
            prepared = prepare_leaf(lp.leaf.kind, res.samples, seed_test_samples(lp.leaf))
            store.put(LeafData(lp.key, prepared.samples, prepared.test, meta, prepared.index))
            if progress:
                progress(f"generated {lp.path}: {len(res.samples)} samples, {t.sent} requests sent, "
                         f"{t.replayed} replayed")

    try:
        await asyncio.gather(*(one(lp) for lp in todo))
    finally:
        await teacher.aclose()


class BrokenLeaves(Exception):
    """Leaves whose store files vanished or failed their checksum while the sets were rebuilt."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(", ".join(paths))
        self.paths = paths


def _read_at(plan: Plan, path: str) -> bytes:
    from labtax.diff import read_blob

    return read_blob(plan.taxonomy, plan.head, path)


def rebuild(plan: Plan, output: Path, store: LeafStore, mix_settings: mix.MixSettings,
            result: RunResult | None = None) -> tuple[dict[str, Any], bool]:
    """Rebuild the sets from every leaf at head with data in the store; write the manifest last.
    Skips rewriting the sets when their inputs are unchanged and the files are intact."""
    failed = set(result.failed if result else [])
    current = [lp for lp in plan.leaves if lp.action in ("generate", "reuse") and lp.key and lp.path not in failed]
    fingerprint = mix.sets_fingerprint([(lp.path, lp.kind, lp.key or "") for lp in current], mix_settings)
    previous = mix.read_manifest(output) or {}
    reuse_sets = previous.get("fingerprint") == fingerprint and mix.sets_intact(output, previous)

    metas: dict[str, dict[str, Any]] = {}
    counts: dict[str, dict[str, int]] = {}
    if not reuse_sets:
        inputs: list[mix.MixLeaf] = []
        cache: dict[str, RawLeaf] = {}
        broken: list[str] = []
        for lp in current:
            assert lp.key is not None
            if lp.key not in cache:
                try:
                    cache[lp.key] = store.load_raw(lp.key)
                except (KeyError, CorruptLeafError):
                    broken.append(lp.path)
                    continue
            data = cache[lp.key]
            if not {"q", "u"} <= set(data.index):  # written by another store format: regenerate
                broken.append(lp.path)
                continue
            metas[lp.path] = {"tokens": data.meta.get("tokens", 0), "seconds": data.meta.get("seconds", 0.0)}
            inputs.append(mix.MixLeaf(lp.path, lp.kind, lp.key, data.data, data.train_span, data.test_span,
                                      data.index))
        if broken:
            raise BrokenLeaves(broken)
        sets = mix.build_sets(inputs, mix_settings)
        sets_info = mix.write_sets(output, sets)
        counts = sets.counts
    else:
        sets_info = previous["sets"]
        prev_entries = {e["path"]: e for e in previous.get("leaves") or []}
        for lp in current:
            e = prev_entries.get(lp.path) or {}
            counts[lp.path] = e.get("counts") or {}
            metas[lp.path] = {"tokens": e.get("tokens", 0), "seconds": e.get("seconds", 0.0)}

    generated_now = {lp.path for lp in plan.of("generate")} - failed
    entries: list[dict[str, Any]] = []
    for lp in plan.leaves:
        if lp.action == "invalid" or lp.path in failed:
            status = "invalid" if lp.action == "invalid" else "failed"
            entries.append({"path": lp.path, "key": lp.key, "kind": lp.kind, "status": status, "changed": lp.changed,
                            "counts": {}, "tokens": 0, "seconds": 0.0, "error": lp.error})
            continue
        if lp.action == "drop":
            entries.append({"path": lp.path, "key": lp.key, "kind": lp.kind, "status": "dropped", "changed": False,
                            "counts": {}, "tokens": 0, "seconds": 0.0})
            continue
        status = "generated" if lp.path in generated_now else "reused"
        m = metas.get(lp.path, {})
        entries.append({"path": lp.path, "key": lp.key, "kind": lp.kind, "status": status, "changed": lp.changed,
                        "counts": counts.get(lp.path, {}), "tokens": int(m.get("tokens") or 0),
                        "seconds": float(m.get("seconds") or 0.0)})

    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "base": plan.base,
        "head": plan.head,
        "base_ref": plan.base_ref,
        "head_ref": plan.head_ref,
        "teacher_model": plan.model_id,
        "settings": plan.settings,
        "mix": plan.mix_settings,
        "sets": sets_info,
        "fingerprint": fingerprint,
        "leaves": entries,
        "run": {
            "requests_sent": result.requests_sent if result else 0,
            "requests_replayed": result.requests_replayed if result else 0,
            "tokens": result.tokens if result else 0,
            "seconds": round(result.seconds, 3) if result else 0.0,
        },
    }
    mix.write_manifest(output, manifest)
    return manifest, not reuse_sets


# ------------------------------------------------------------------------------------------ gc


@dataclass
class GcResult:
    removed: list[str]
    bytes_freed: int
    leftovers: list[str]
    requests_pruned: int
    kept: int


def collect_garbage(output: Path, *, dry_run: bool = False, wait: float = 0.0) -> GcResult:
    """Delete store files no current leaf references (the manifest's generated/reused leaves), the
    leftovers of killed writers and quarantined corrupt files, and their ledger responses."""
    manifest = mix.read_manifest(output)
    if manifest is None:
        raise UsageError(f"no {mix.MANIFEST} in {output}: nothing says which data is current",
                         hint="run labtax diff-generate first")
    keep = {e["key"] for e in manifest.get("leaves") or [] if e.get("status") in ("generated", "reused")
            and e.get("key")}
    # A failed leaf has no store file yet, but its recorded responses are what its next run replays.
    resumable = keep | {e["key"] for e in manifest.get("leaves") or [] if e.get("status") == "failed"
                        and e.get("key")}
    store = LeafStore(output / LEAVES_DIR)
    with output_lock(output, wait=wait):
        doomed = sorted(k for k in store.all_keys() if k not in keep)
        leftovers = list(store.garbage())
        freed = 0
        pruned = 0
        if not dry_run:
            for k in doomed:
                freed += store.remove(k)
            for p in leftovers:
                try:
                    freed += p.stat().st_size
                    p.unlink()
                except FileNotFoundError:
                    pass
            if (output / LEDGER_FILE).exists():
                with Ledger(output / LEDGER_FILE) as ledger:
                    pruned = ledger.prune_requests(resumable)
        else:
            freed = sum(store.path_for(k).stat().st_size for k in doomed)
        return GcResult(doomed, freed, [str(p.relative_to(output)) for p in leftovers], pruned, len(keep))


# ------------------------------------------------------------------------------ the whole command


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
) -> Plan | RunResult:
    """Plan (and, unless `dry_run`, run) one diff-generate. A dry run takes no lock, writes nothing and
    returns the Plan; a real run holds the output lock throughout and returns a RunResult."""
    store = LeafStore(output / LEAVES_DIR)
    if dry_run:
        ledger = Ledger(output / LEDGER_FILE) if (output / LEDGER_FILE).exists() else None
        try:
            return plan_run(taxonomy, output, base=base, head=head, model_id=teacher.model_id, settings=settings,
                            mix_settings=mix_settings, ledger=ledger, store=_ReadOnlyStore(store.root))
        finally:
            if ledger is not None:
                ledger.close()
    with output_lock(output, wait=wait), Ledger(output / LEDGER_FILE) as ledger:
        plan = plan_run(taxonomy, output, base=base, head=head, model_id=teacher.model_id, settings=settings,
                        mix_settings=mix_settings, ledger=ledger, store=store)
        return execute(plan, output, taxonomy=taxonomy, teacher=teacher, settings=settings,
                       mix_settings=mix_settings, ledger=ledger, store=store, progress=progress)


class _ReadOnlyStore(LeafStore):
    """A dry run must not move corrupt files aside: it only reports them as to be generated."""

    def verify(self, key: str, stat_cache: dict[str, tuple[int, int]] | None = None) -> bool:
        from labtax.sdg.store import split_verified

        try:
            st = self.path_for(key).stat()
            if stat_cache is not None and stat_cache.get(key) == (st.st_size, st.st_mtime_ns):
                return True
            split_verified(self.path_for(key).read_bytes(), key)
        except (FileNotFoundError, CorruptLeafError):
            return False
        return True
