"""Planning a diff-generate run: compare the leaves at head with the store, the ledger's memo and the
diff, and decide for each leaf whether to generate, reuse or drop it (`plan_run`).

The leaf store is the source of truth; the diff only narrows what must be looked at.

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

Planning writes nothing: the memo updates it computes travel in the Plan, for the run to record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from labtax.data import read_manifest
from labtax.data.names import STORE_FORMAT
from labtax.diff import diff_taxonomy
from labtax.diff.model import DiffResult, LeafChange
from labtax.diff.repository import open_taxonomy
from labtax.diff.snapshot import Snapshot
from labtax.errors import LabtaxError, UsageError
from labtax.mix import mix
from labtax.sdg.documents import DocumentFetchError, NotFetched, chunk_text, load_documents, no_fetch
from labtax.sdg.keys import content_key, environment_digest, files_digest, sha256_hex
from labtax.sdg.ledger import Ledger, MemoRow
from labtax.sdg.pipelines import estimate_requests, pipeline_files
from labtax.sdg.pipelines.knowledge import knowledge_seeds
from labtax.sdg.pipelines.knowledge_plan import completion_tokens, plan_from_texts
from labtax.sdg.readers import reader_identity
from labtax.sdg.settings import settings_record
from labtax.sdg.store import LeafStore
from labtax.taxonomy import kind_of
from labtax.taxonomy.config import load_config
from labtax.taxonomy.engine import check_attribution_bytes, check_data, finalize
from labtax.taxonomy.leaves import parse_leaf
from labtax.taxonomy.model import Finding
from labtax.util.quoting import one_line, quote_path

if TYPE_CHECKING:
    from labtax.sdg.settings import GenerationSettings
    from labtax.taxonomy.config import Config
    from labtax.taxonomy.model import Leaf

Action = Literal["generate", "reuse", "drop", "invalid"]


def watched_dirs(leaf: Leaf) -> list[str]:
    """Folders whose change may change the leaf's key without its qna.yaml changing: the leaf's own
    folder and, for a knowledge leaf, a document folder inside the taxonomy (`document.repo` a path)."""
    folder = leaf.spec.document.folder if leaf.spec.document else None
    return [leaf.leaf_dir, folder] if folder is not None else [leaf.leaf_dir]

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
    # knowledge: what the request limit buys (requests, completion_tokens, facts, facts_asked, wordings,
    # chunks, chunks_asked), from the chunks' facts by the word estimate; None for other leaves
    knowledge: dict[str, int] | None = None
    leaf: Leaf | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "kind": self.kind, "action": self.action, "key": self.key,
            "changed": self.changed, "change": self.change, "old_path": self.old_path, "reason": self.reason,
            "estimated_requests": self.estimated_requests, "recorded_requests": self.recorded_requests,
            "error": self.error, **({"knowledge": self.knowledge} if self.knowledge else {}),
        }


@dataclass
class Plan:
    base: str | None  # None: a forced plan (`labtax generate`), planned from a folder, not from git
    head: str | None
    base_ref: str | None
    head_ref: str | None
    model_id: str
    settings: GenerationSettings
    mix_settings: mix.MixSettings
    document_reader: str  # the reader identity that reads the documents (readers.reader_identity)
    env: str
    leaves: list[LeafPlan]
    max_tokens: int
    memo_updates: dict[str, MemoRow] = field(default_factory=dict, repr=False)
    memo_removals: list[str] = field(default_factory=list, repr=False)
    verified: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    taxonomy: Path = field(default=Path("."), repr=False)
    # `labtax generate`'s plan (plan_forced): every named leaf generated, and a teacher failure fails
    # only its own leaf (the others go on: the user named each of them).
    forced: bool = False

    def of(self, action: Action) -> list[LeafPlan]:
        return [lp for lp in self.leaves if lp.action == action]

    def settings_record(self) -> dict[str, Any]:
        """The generation settings as the ledger, the manifest and `--format json` record them: what
        the content keys hash, and the document reader that read the documents."""
        return settings_record(self.settings, self.document_reader)

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
            "base": self.base, "head": self.head, "teacher_model": self.model_id, "settings": self.settings_record(),
            "summary": {a: len(self.of(a)) for a in ("generate", "reuse", "drop", "invalid")},
            "estimated_requests": self.estimated_requests, "estimated_completion_tokens": self.estimated_tokens,
            "leaves": [lp.to_dict() for lp in self.leaves],
        }


def environment(model_id: str, settings: GenerationSettings) -> str:
    digest = f"{files_digest(pipeline_files())}|store-format-{STORE_FORMAT}"
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
    fetch: bool = True,
) -> Plan:
    """Decide, for every leaf at head and every leaf that left, what this run does with it.
    `fetch=False` (a dry run): documents not in the cache are not fetched; such a leaf is planned
    for generation without a key."""
    if not fetch:
        with no_fetch():
            return plan_run(taxonomy, output, base=base, head=head, model_id=model_id, settings=settings,
                            mix_settings=mix_settings, ledger=ledger, store=store)

    diff = diff_taxonomy(taxonomy, base, head)
    env = environment(model_id, settings)
    # A knowledge leaf's key holds its documents' text, which depends on the reader (docling, its
    # models): its memo row is fresh only for the same reader, so installing docling re-reads them.
    reader = reader_identity(settings.document_reader)
    ctx = _Planning(
        taxonomy=Path(taxonomy), settings=settings, changes={c.path: c for c in diff.changes}, env=env,
        knowledge_env=sha256_hex(f"{env}\0{reader}"), memo=ledger.memo() if ledger is not None else {},
        # An untrusted store (restored from a cache) is verified file by file, record by record.
        verified=ledger.verified() if ledger is not None and not getattr(store, "untrusted", False) else {},
        ledger=ledger, store=store,
    )
    config = validation_config(taxonomy)
    with open_taxonomy(taxonomy) as tax:
        snap = Snapshot(tax, diff.head, config.max_file_bytes)
        parsed = ctx.parse_stale(snap, config)
        plans = ctx.plan_at_head(snap, parsed)
    plans += ctx.dropped(diff, set(snap.paths), output)
    plans.sort(key=lambda lp: lp.path)
    return Plan(
        base=diff.base, head=diff.head, base_ref=base, head_ref=head, model_id=model_id,
        settings=settings, mix_settings=mix_settings, document_reader=reader, env=env,
        leaves=plans,
        max_tokens=settings.max_tokens, memo_updates=parsed.memo_updates,
        memo_removals=sorted(set(ctx.memo) - set(snap.paths)), verified=ctx.verified, taxonomy=Path(taxonomy),
    )


def plan_forced(taxonomy: Path, leaves: Sequence[Leaf], *, model_id: str, settings: GenerationSettings,
                mix_settings: mix.MixSettings, ledger: Ledger | None) -> tuple[Plan, dict[str, LabtaxError]]:
    """`labtax generate`'s plan: the named leaves of a folder (read from the files, no git), each to
    generate whatever the store holds, keyed as diff-generate keys it (so the ledger replays what it
    already answered: a rerun sends no request twice). Returns the plan and, per leaf whose documents
    cannot be read, its error (the leaf is planned invalid: it fails alone)."""
    env = environment(model_id, settings)
    plans: list[LeafPlan] = []
    errors: dict[str, LabtaxError] = {}
    for leaf in leaves:
        lp = LeafPlan(path=leaf.path, kind=leaf.kind, action="generate", changed=True, reason="named", leaf=leaf)
        plans.append(lp)
        try:
            docs = _documents(leaf, Path(taxonomy), settings.document_reader)
        except LabtaxError as exc:
            lp.action, lp.error, lp.reason, errors[leaf.path] = "invalid", str(exc), "documents cannot be read", exc
            continue
        lp.key = content_key(leaf, docs, env)
        texts = _chunk_texts(leaf, docs, settings)
        lp.estimated_requests = estimate_requests(leaf, settings, texts)
        lp.knowledge = knowledge_budget(leaf, texts, settings)
        lp.recorded_requests = ledger.count_responses(lp.key) if ledger is not None else 0
    return Plan(base=None, head=None, base_ref=None, head_ref=None, model_id=model_id, settings=settings,
                mix_settings=mix_settings, document_reader=reader_identity(settings.document_reader), env=env,
                leaves=plans, max_tokens=settings.max_tokens, taxonomy=Path(taxonomy), forced=True), errors


@dataclass
class _Parsed:
    """What reading the leaves at head found: content keys and kinds (from the memo or parsed), the
    parsed leaves and their documents, the invalid ones and why, the ones whose documents a dry run
    did not fetch, and the memo rows to write."""

    keys: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    leaves: dict[str, Leaf] = field(default_factory=dict)
    doc_texts: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    unfetched: dict[str, Leaf] = field(default_factory=dict)
    memo_updates: dict[str, MemoRow] = field(default_factory=dict)


@dataclass
class _Planning:
    """One plan_run's inputs, and its steps: parse what the memo cannot vouch for, plan each leaf at
    head, then the leaves that left."""

    taxonomy: Path
    settings: GenerationSettings
    changes: dict[str, LeafChange]
    env: str
    knowledge_env: str
    memo: dict[str, MemoRow]
    verified: dict[str, tuple[int, int]]
    ledger: Ledger | None
    store: LeafStore
    recorded: dict[str, int] = field(default_factory=dict)  # key -> responses the ledger holds

    def env_of(self, kind: str) -> str:
        return self.knowledge_env if kind == "knowledge" else self.env

    def parse_stale(self, snap: Snapshot, config: Config) -> _Parsed:
        """A leaf whose memo row matches its blob, settings and watched folders keeps its key without
        being parsed; every other leaf is validated and parsed, and its key computed."""
        out = _Parsed()
        to_parse: list[str] = []
        for path in snap.paths:
            row = self.memo.get(path)
            fresh = (row is not None and row.blob == snap.blobs[path] and row.env == self.env_of(_kind(path))
                     and row.tree == snap.fingerprint(json.loads(row.dirs)))
            if fresh and path not in self.changes and row is not None:
                out.keys[path], out.kinds[path] = row.key, row.kind
            else:
                to_parse.append(path)
        raw = snap.read(to_parse)
        for path in to_parse:
            self._parse_one(path, raw.get(path), snap, config, out)
        return out

    def _parse_one(self, path: str, raw: bytes | None, snap: Snapshot, config: Config, out: _Parsed) -> None:
        # The same checks as `labtax validate`: an invalid leaf is skipped with its findings.
        problems = snap.problems.get(path) or leaf_findings(path, raw, config, snap)
        if problems:
            out.errors[path] = format_findings(problems)
            return
        try:
            leaf = parse_leaf_at_head(path, raw)
            docs = _documents(leaf, self.taxonomy, self.settings.document_reader)
        except NotFetched:
            out.unfetched[path] = leaf
            return
        except DocumentFetchError as exc:  # offline, DNS: this leaf's fetch error, said as such
            out.errors[path], out.reasons[path] = str(exc), "document fetch failed"
            return
        except (LabtaxError, ValueError, OSError) as exc:  # LeafError, a bad document reference
            out.errors[path] = str(exc)
            return
        out.leaves[path] = leaf
        out.doc_texts[path] = docs
        out.keys[path], out.kinds[path] = content_key(leaf, docs, self.env), leaf.kind
        dirs = watched_dirs(leaf)
        out.memo_updates[path] = MemoRow(snap.blobs[path], snap.fingerprint(dirs), self.env_of(leaf.kind),
                                         out.keys[path], leaf.kind, json.dumps(dirs))

    def plan_at_head(self, snap: Snapshot, parsed: _Parsed) -> list[LeafPlan]:
        """Each leaf at head: invalid, to generate (not in the store) or to reuse."""
        plans: list[LeafPlan] = []
        planned_keys: set[str] = set()
        for path in snap.paths:
            change = self.changes.get(path)
            changed = change is not None and change.status in ("added", "modified", "renamed")
            lp = LeafPlan(path=path, kind=parsed.kinds.get(path, _kind(path)), action="reuse", changed=changed,
                          change=change.status if change else None, old_path=change.old_path if change else None)
            plans.append(lp)
            if path in parsed.errors:
                lp.action, lp.error, lp.reason = "invalid", parsed.errors[path], parsed.reasons.get(path, "invalid leaf")
            elif path in parsed.unfetched:
                lp.action, lp.reason, lp.leaf = "generate", "documents not fetched yet (dry run)", parsed.unfetched[path]
                lp.estimated_requests = estimate_requests(lp.leaf, self.settings, None)
            else:
                lp.key = parsed.keys[path]
                if lp.key in planned_keys:
                    lp.reason = "same content as another leaf generated in this run"
                elif self.store.verify(lp.key, self.verified):
                    lp.reason = "renamed, content unchanged" if change and change.status == "renamed" else (
                        "content key already in the store" if changed else "unchanged")
                else:
                    lp.action = "generate"
                    lp.reason = change.status if changed and change else "not in the store"
                    self._size(lp, snap, parsed)
                    planned_keys.add(lp.key)
        return plans

    def _size(self, lp: LeafPlan, snap: Snapshot, parsed: _Parsed) -> None:
        """A leaf to generate: its parsed leaf, the requests it may cost, and those already answered."""
        assert lp.key is not None
        leaf = parsed.leaves.get(lp.path) or parse_leaf_at_head(lp.path, snap.read([lp.path]).get(lp.path))
        lp.leaf = leaf
        docs = parsed.doc_texts[lp.path] if lp.path in parsed.doc_texts else _documents_or_none(
            leaf, self.taxonomy, self.settings.document_reader)
        texts = _chunk_texts(leaf, docs, self.settings)
        lp.estimated_requests = estimate_requests(leaf, self.settings, texts)
        lp.knowledge = knowledge_budget(leaf, texts, self.settings)
        if self.ledger is not None:
            if lp.key not in self.recorded:
                self.recorded[lp.key] = self.ledger.count_responses(lp.key)
            lp.recorded_requests = self.recorded[lp.key]

    def dropped(self, diff: DiffResult, current: set[str], output: Path) -> list[LeafPlan]:
        """Deleted in the diff, or in the previous manifest and no longer at head."""
        renamed_from = {c.old_path for c in diff.changes if c.status == "renamed" and c.old_path}
        previous = read_manifest(output)
        prev_keys = {e.path: e.key for e in (previous.leaves if previous else ()) if e.status != "dropped"}
        gone = {c.path for c in diff.changes if c.status == "deleted"} | set(prev_keys)
        plans = []
        for path in sorted(gone - current - renamed_from):
            row = self.memo.get(path)
            plans.append(LeafPlan(path=path, kind=_kind(path), action="drop", key=prev_keys.get(path) or (
                row.key if row else None), change="deleted" if path in self.changes else None,
                reason="deleted" if path in self.changes else "no longer at head"))
        return plans


def validation_config(taxonomy: Path) -> Config:
    """validate's settings for the taxonomy (its protected rules cannot be disabled)."""
    return load_config(Path(taxonomy))


def leaf_findings(path: str, raw: bytes | None, config: Config, snap: Snapshot) -> list[Finding]:
    """validate's error findings for a leaf as read at head (attribution.txt read there too)."""
    if raw is None:
        return [Finding("file-unreadable", "error", path, 1, 1, "cannot be read at head")]
    findings = check_data(".", path, kind_of(path), raw, config,
                          attribution=lambda rel: check_attribution_bytes(rel, snap.attribution(rel)))
    return [f for f in finalize(findings, config) if f.severity == "error"]


def format_findings(findings: list[Finding], limit: int = 5) -> str:
    """`file:line:col: message [rule]`, the first few, for a plan line and the manifest."""
    shown = [f"{quote_path(f.path)}:{f.line}:{f.col}: {one_line(f.message)} [{f.rule}]" for f in findings[:limit]]
    more = len(findings) - limit
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _kind(path: str) -> str:
    return PurePosixPath(path).parts[0]


def parse_leaf_at_head(path: str, raw: bytes | None) -> Leaf:
    """Parse a leaf's qna.yaml as read at head. Public because a run re-parses the leaves whose store
    file failed its checksum after planning."""
    if raw is None:
        raise UsageError(f"{path}: cannot be read at head")
    return parse_leaf(path, raw)


def _documents_or_none(leaf: Leaf, taxonomy: Path, reader: str) -> list[str]:
    """The documents for an estimate only: one that cannot be read now fails its leaf when the leaf is
    generated (a leaf error), never the plan of every leaf."""
    try:
        return _documents(leaf, taxonomy, reader)
    except (LabtaxError, ValueError, OSError):
        return []


def _chunk_texts(leaf: Leaf, docs: list[str], settings: GenerationSettings) -> list[str] | None:
    """The knowledge leaf's chunks by the word estimate (the teacher's tokenizer is not loaded while
    planning): for the dry-run's estimates only."""
    if leaf.kind != "knowledge":
        return None

    return [text for d in docs for text, _ in chunk_text(d.split("\0", 1)[-1], settings.chunk_tokens)] or None


def knowledge_budget(leaf: Leaf, texts: list[str] | None, settings: GenerationSettings) -> dict[str, int] | None:
    """What the request limit buys a knowledge leaf (knowledge_plan.py): its Q&A requests and their
    completion tokens at most, the facts asked of all, the wordings each, the chunks asked of all."""
    if leaf.kind != "knowledge" or not texts:
        return None

    kp = plan_from_texts(texts, len(knowledge_seeds(leaf)), settings)
    return {"requests": kp.requests, "completion_tokens": completion_tokens(kp, settings), "facts": kp.facts,
            "facts_asked": kp.facts_asked, "wordings": kp.wordings, "chunks": len(texts),
            "chunks_asked": kp.chunks_asked}


def _documents(leaf: Leaf, taxonomy: Path, reader: str) -> list[str]:
    if leaf.kind != "knowledge" or leaf.spec.document is None:
        return []

    return [f"{d.path}\0{d.text}" for d in load_documents(leaf, taxonomy, reader)]
