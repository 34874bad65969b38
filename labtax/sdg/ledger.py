"""The run ledger (`<output>/ledger.sqlite`, WAL mode) and the request-replaying teacher wrapper.

Tables:
  runs       one row per diff-generate/generate run: refs, model, settings, status, totals.
  leaves     per run and leaf path: key, status (generated/reused/dropped), counts, tokens, seconds.
  leaf_keys  memo path -> (qna.yaml blob id, leaf-folder fingerprint, environment digest, key), so a
             run recomputes a key (parse + read documents) only for a leaf whose bytes changed.
  verified   key -> (size, mtime_ns) of store files whose checksum held, so a no-op run need not
             re-read every file (loading for a rebuild always checks the checksum).
  requests   one row per completed teacher request: the response, keyed by sha256(model id, request
             key), committed as soon as it arrives. A killed run replays these instead of asking again.

SQLite in WAL mode with synchronous=NORMAL: a commit survives the process being killed (SIGKILL)
because the WAL write has reached the kernel; only a power cut may lose the last commits, and those
requests are then simply sent again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labtax.data import LeafEntry
from labtax.errors import InputOutputError, UsageError
from labtax.teachers.base import TeacherResponse

# The ledger's schema version, kept in SQLite's `PRAGMA user_version`. A ledger of an older version is
# brought up to date by MIGRATIONS[v] (v -> v+1) in one transaction each; a newer one is refused.
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  started REAL NOT NULL, finished REAL, status TEXT NOT NULL,
  command TEXT, base TEXT, head TEXT, model TEXT, settings TEXT,
  requests_sent INTEGER NOT NULL DEFAULT 0, requests_replayed INTEGER NOT NULL DEFAULT 0,
  tokens INTEGER NOT NULL DEFAULT 0, seconds REAL
);
CREATE TABLE IF NOT EXISTS leaves(
  run_id INTEGER NOT NULL, path TEXT NOT NULL, key TEXT, status TEXT NOT NULL,
  changed INTEGER NOT NULL DEFAULT 0, counts TEXT, tokens INTEGER, seconds REAL,
  PRIMARY KEY(run_id, path)
);
CREATE TABLE IF NOT EXISTS leaf_keys(
  path TEXT PRIMARY KEY, blob TEXT NOT NULL, tree TEXT NOT NULL, env TEXT NOT NULL,
  key TEXT NOT NULL, kind TEXT NOT NULL, dirs TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS requests(
  key TEXT PRIMARY KEY, leaf_key TEXT NOT NULL, run_id INTEGER, tag TEXT, response TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
  created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_leaf ON requests(leaf_key);
CREATE TABLE IF NOT EXISTS verified(
  key TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL
);
"""
# Version 0 is every ledger written before versions were recorded: the same tables, which SCHEMA
# creates where missing (CREATE ... IF NOT EXISTS).
MIGRATIONS: dict[int, str] = {0: SCHEMA}


@dataclass(frozen=True)
class MemoRow:
    """What a leaf's key was computed from: its qna.yaml blob id, a fingerprint of the folders in
    `dirs` (a JSON list: the leaf folder, a local document folder), the environment digest."""

    blob: str
    tree: str
    env: str
    key: str
    kind: str
    dirs: str = "[]"


class Ledger:
    """A connection to `<output>/ledger.sqlite`. One per process; not shared across threads.

    The store is the truth, the ledger a cache of it: a ledger SQLite cannot read (truncated, a
    garbage header, a failed integrity check) is moved aside to `ledger.sqlite.corrupt` and rebuilt
    empty, with one line on stderr, and the run carries on (its requests are sent again). A stored
    response that cannot be decoded is deleted and sent again. `readonly=True` (a dry run) writes
    nothing: a broken ledger then reads as an empty one."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.recovered = False
        self.dropped_rows = 0
        self.conn: sqlite3.Connection
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            if hasattr(self, "conn"):  # opened, then found unreadable
                self.conn.close()
            if is_io_failure(exc):
                # The disk, not the file: moving a good ledger aside would lose its recorded responses.
                raise io_error(self.path, exc) from None
            if readonly:
                self.conn = sqlite3.connect(":memory:", isolation_level=None)
                self._migrate()
                return
            self._move_aside(exc)
            self._open()

    def _open(self) -> None:
        if self.readonly:
            # Opening a WAL database read-only still creates its -wal/-shm files; when a writer left
            # none (it checkpointed on close), read the file as immutable so nothing is created.
            wal = self.path.with_name(self.path.name + "-wal").exists()
            mode = "mode=ro" if wal else "mode=ro&immutable=1"
            self.conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?{mode}", uri=True, timeout=30.0,
                                        isolation_level=None)
            self.conn.execute("PRAGMA query_only=1")
            _check(self.conn)
            if self.schema_version() != SCHEMA_VERSION:
                raise sqlite3.DatabaseError("an older ledger schema (a real run migrates it)")
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so every record is committed promptly.
        self.conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=30000")
        _check(self.conn)
        self._migrate()

    def _move_aside(self, exc: Exception) -> None:
        for suffix in ("", "-wal", "-shm"):
            part = self.path.with_name(self.path.name + suffix)
            if part.exists():
                os.replace(part, part.with_name(part.name + ".corrupt"))
        self.recovered = True
        sys.stderr.write(f"labtax: {self.path} was unreadable ({exc}); moved aside to "
                         f"{self.path.name}.corrupt and rebuilt (requests not in the store are sent again)\n")

    def _migrate(self) -> None:
        """Bring the ledger to SCHEMA_VERSION, one migration per transaction. IMMEDIATE: two runs
        opening an old ledger at once migrate it once (the second sees the new version)."""
        while True:
            with self.transaction(immediate=True):
                version = self.schema_version()
                if version > SCHEMA_VERSION:
                    raise UsageError(f"{self.path}: ledger schema version {version} is newer than this "
                                     f"labtax reads ({SCHEMA_VERSION})",
                                     hint="use the labtax that wrote it, or a newer one")
                if version == SCHEMA_VERSION:
                    return
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version={version + 1}")

    @contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[None]:
        """BEGIN ... COMMIT, or ROLLBACK when the block raises (the connection autocommits otherwise).
        `immediate` takes the write lock at once (for read-then-write blocks)."""
        self.conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Ledger:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------- runs

    def start_run(self, *, command: str, base: str | None, head: str | None, model: str,
                  settings: dict[str, Any]) -> int:
        cur = self.conn.execute(
            "INSERT INTO runs(started, status, command, base, head, model, settings) VALUES(?,?,?,?,?,?,?)",
            (time.time(), "running", command, base, head, model, json.dumps(settings, sort_keys=True)),
        )
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, *, status: str, requests_sent: int, requests_replayed: int,
                   tokens: int, seconds: float) -> None:
        self.conn.execute(
            "UPDATE runs SET finished=?, status=?, requests_sent=?, requests_replayed=?, tokens=?, seconds=?"
            " WHERE id=?",
            (time.time(), status, requests_sent, requests_replayed, tokens, seconds, run_id),
        )

    def runs(self) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT * FROM runs ORDER BY id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def record_leaves(self, run_id: int, rows: Iterable[LeafEntry]) -> None:
        with self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO leaves(run_id, path, key, status, changed, counts, tokens, seconds)"
                " VALUES(?,?,?,?,?,?,?,?)",
                [
                    (run_id, r.path, r.key, r.status, int(r.changed), json.dumps(dict(r.counts), sort_keys=True),
                     r.tokens, r.seconds)
                    for r in rows
                ],
            )

    # ------------------------------------------------------------------------------------- memo

    def memo(self) -> dict[str, MemoRow]:
        return {
            path: MemoRow(blob, tree, env, key, kind, dirs)
            for path, blob, tree, env, key, kind, dirs in self.conn.execute(
                "SELECT path, blob, tree, env, key, kind, dirs FROM leaf_keys"
            )
        }

    def update_memo(self, rows: dict[str, MemoRow], *, remove: Iterable[str] = ()) -> None:
        with self.transaction():
            self.conn.executemany("DELETE FROM leaf_keys WHERE path=?", [(p,) for p in remove])
            self.conn.executemany(
                "INSERT OR REPLACE INTO leaf_keys(path, blob, tree, env, key, kind, dirs) VALUES(?,?,?,?,?,?,?)",
                [(p, m.blob, m.tree, m.env, m.key, m.kind, m.dirs) for p, m in rows.items()],
            )

    def verified(self) -> dict[str, tuple[int, int]]:
        return {k: (size, mtime) for k, size, mtime in self.conn.execute("SELECT key, size, mtime_ns FROM verified")}

    def update_verified(self, cache: dict[str, tuple[int, int]]) -> None:
        with self.transaction():
            self.conn.execute("DELETE FROM verified")
            self.conn.executemany("INSERT INTO verified(key, size, mtime_ns) VALUES(?,?,?)",
                                  [(k, s, m) for k, (s, m) in cache.items()])

    # ---------------------------------------------------------------------------------- requests

    def responses(self, keys: Sequence[str]) -> dict[str, TeacherResponse]:
        """Stored responses for the given request keys (those that completed in any earlier run)."""
        found: dict[str, TeacherResponse] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 500):  # stay under SQLite's bound-parameter limit
            chunk = uniq[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for key, blob in self.conn.execute(
                f"SELECT key, response FROM requests WHERE key IN ({marks})", chunk
            ):
                try:
                    found[key] = _decode_response(blob)
                except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
                    self._drop_response(key)  # a damaged row: asked again, never a crash
        return found

    def _drop_response(self, key: str) -> None:
        self.dropped_rows += 1
        if not self.readonly:
            self.conn.execute("DELETE FROM requests WHERE key=?", (key,))

    def record_response(self, key: str, response: TeacherResponse, *, leaf_key: str, run_id: int | None,
                        tag: str) -> None:
        """Store one completed response; committed before returning (autocommit)."""
        self.conn.execute(
            "INSERT OR REPLACE INTO requests(key, leaf_key, run_id, tag, response, prompt_tokens,"
            " completion_tokens, created) VALUES(?,?,?,?,?,?,?,?)",
            (key, leaf_key, run_id, tag, _encode_response(response), response.prompt_tokens,
             response.completion_tokens, time.time()),
        )

    def count_responses(self, leaf_key: str | None = None) -> int:
        if leaf_key is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
        return int(
            self.conn.execute("SELECT COUNT(*) FROM requests WHERE leaf_key=?", (leaf_key,)).fetchone()[0]
        )

    def request_keys(self) -> set[str]:
        return {k for (k,) in self.conn.execute("SELECT key FROM requests")}

    def prune_requests(self, keep_leaf_keys: Iterable[str]) -> int:
        """Delete recorded responses of leaves not in `keep_leaf_keys`; returns rows deleted."""
        keep = set(keep_leaf_keys)
        doomed = [
            (k,) for (k,) in self.conn.execute("SELECT DISTINCT leaf_key FROM requests") if k not in keep
        ]
        with self.transaction():
            before = self.conn.total_changes
            self.conn.executemany("DELETE FROM requests WHERE leaf_key=?", doomed)
            deleted = self.conn.total_changes - before
        return deleted


# SQLite's result codes for a failing disk rather than a damaged file (sqlite3.h): SQLITE_READONLY 8,
# SQLITE_IOERR 10, SQLITE_FULL 13, SQLITE_CANTOPEN 14.
_IO_CODES = frozenset({8, 10, 13, 14})
_IO_TEXTS = ("database or disk is full", "disk i/o error", "readonly database", "unable to open database")


def is_io_failure(exc: BaseException) -> bool:
    """An SQLite error that the disk caused (full, read-only, failing), not the ledger's content."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # python >= 3.11
    if isinstance(code, int) and code & 0xFF in _IO_CODES:
        return True
    return any(text in str(exc).lower() for text in _IO_TEXTS)


def io_error(path: Path, exc: BaseException) -> InputOutputError:
    """The one-line I/O error (exit 2) for a ledger the disk failed: its path and SQLite's cause."""
    return InputOutputError(f"{path}: {exc}", hint="free some space (or make the folder writable) and run "
                            "again: what was recorded is kept and the run continues from there")


def _encode_response(r: TeacherResponse) -> str:
    return json.dumps(
        {
            "text": r.text,
            "finish_reason": r.finish_reason,
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens,
            "extra": r.extra,
        },
        ensure_ascii=False,
        sort_keys=True,
        default=str,
    )


def _check(conn: sqlite3.Connection) -> None:
    """Raise DatabaseError unless SQLite can read the file (header, pages, indexes)."""
    row = conn.execute("PRAGMA quick_check").fetchone()
    if row is None or row[0] != "ok":
        raise sqlite3.DatabaseError(f"integrity check: {row[0] if row else 'no answer'}")


def _decode_response(blob: str) -> TeacherResponse:
    d = json.loads(blob)
    if not isinstance(d, dict) or not isinstance(d.get("text"), str):
        raise ValueError("not a stored response")  # noqa: TRY004 (a bad row, decoded by the caller)
    return TeacherResponse(
        text=d["text"],
        ok=True,
        prompt_tokens=int(d.get("prompt_tokens") or 0),
        completion_tokens=int(d.get("completion_tokens") or 0),
        finish_reason=d.get("finish_reason"),
        extra=dict(d.get("extra") or {}),
    )
