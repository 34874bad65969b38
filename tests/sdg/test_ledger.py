"""The ledger and the replaying LedgerTeacher."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from labtax.data import LeafEntry
from labtax.sdg.ledger import Ledger, MemoRow
from labtax.sdg.replay import LedgerTeacher, ledger_request_key
from labtax.teachers.base import TeacherRequest, TeacherResponse


class CountingTeacher:
    """A real in-process teacher: answers are a function of the request; every request is counted.
    `fail_on` makes the listed prompts fail (ok=False), like a teacher out of retries."""

    def __init__(self, model_id: str = "count:1", fail_on: Sequence[str] = ()) -> None:
        self.model_id = model_id
        self.seen: Counter[str] = Counter()
        self.calls = 0
        self.fail_on = set(fail_on)

    async def complete(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
        self.calls += 1
        out = []
        for r in requests:
            prompt = r.messages[-1][1]
            self.seen[prompt] += 1
            await asyncio.sleep(0)
            if prompt in self.fail_on:
                out.append(TeacherResponse(text="", ok=False, error="boom"))
            else:
                out.append(TeacherResponse(text=f"answer to {prompt}", prompt_tokens=3, completion_tokens=4,
                                           finish_reason="stop"))
        return out

    async def aclose(self) -> None:
        pass


def req(prompt: str, seed: int = 0) -> TeacherRequest:
    return TeacherRequest(messages=(("user", prompt),), seed=seed, tag="questions")


def test_ledger_is_wal(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        mode = ledger.conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_replays_completed_requests_and_sends_only_the_rest(tmp_path: Path) -> None:
    inner = CountingTeacher()
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        t = LedgerTeacher(inner, ledger, leaf_key="k1")
        first = asyncio.run(t.complete([req("a"), req("b")]))
        assert [r.text for r in first] == ["answer to a", "answer to b"]
        assert (t.sent, t.replayed, t.tokens) == (2, 0, 14)

    # A new process: new connection, new wrapper.
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        t = LedgerTeacher(inner, ledger, leaf_key="k1")
        second = asyncio.run(t.complete([req("a"), req("c"), req("b"), req("c")]))
        assert [r.text for r in second] == ["answer to a", "answer to c", "answer to b", "answer to c"]
        assert inner.seen == Counter({"a": 1, "b": 1, "c": 1})  # c sent once despite appearing twice
        assert (t.sent, t.replayed) == (1, 2)
        assert t.tokens == 3 * 7  # replayed responses count their stored tokens, each distinct one once
        assert ledger.count_responses("k1") == 3


def test_each_response_is_committed_before_the_batch_ends(tmp_path: Path) -> None:
    """Responses land in the database one by one: another connection sees them mid-batch."""
    db = tmp_path / "ledger.sqlite"
    observed: list[int] = []

    class Observing(CountingTeacher):
        async def complete(self, requests: Sequence[TeacherRequest]) -> list[TeacherResponse]:
            other = sqlite3.connect(str(db))
            observed.append(other.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
            other.close()
            return await super().complete(requests)

    with Ledger(db) as ledger:
        t = LedgerTeacher(Observing(), ledger, leaf_key="k")

        async def sequential() -> None:
            for p in ("a", "b", "c"):
                await t.complete([req(p)])

        asyncio.run(sequential())
    assert observed == [0, 1, 2]


def test_failed_responses_are_not_recorded(tmp_path: Path) -> None:
    inner = CountingTeacher(fail_on=["bad"])
    with Ledger(tmp_path / "l.sqlite") as ledger:
        t = LedgerTeacher(inner, ledger, leaf_key="k")
        out = asyncio.run(t.complete([req("good"), req("bad")]))
        assert [r.ok for r in out] == [True, False]
        assert t.failed == 1
        inner.fail_on.clear()
        out = asyncio.run(t.complete([req("good"), req("bad")]))
        assert [r.ok for r in out] == [True, True]
    assert inner.seen == Counter({"good": 1, "bad": 2})


def test_responses_are_namespaced_by_model(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as ledger:
        asyncio.run(LedgerTeacher(CountingTeacher("m1"), ledger).complete([req("a")]))
        other = CountingTeacher("m2")
        asyncio.run(LedgerTeacher(other, ledger).complete([req("a")]))
        assert other.seen["a"] == 1
    assert ledger_request_key("m1", req("a")) != ledger_request_key("m2", req("a"))
    assert ledger_request_key("m1", req("a")) != ledger_request_key("m1", req("a", seed=1))


def test_memo_runs_and_prune(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as ledger:
        ledger.update_memo({"a/qna.yaml": MemoRow("b1", "t1", "e", "k1", "knowledge")})
        ledger.update_memo({"b/qna.yaml": MemoRow("b2", "t2", "e", "k2", "knowledge")}, remove=["a/qna.yaml"])
        assert set(ledger.memo()) == {"b/qna.yaml"}
        run = ledger.start_run(command="diff-generate", base="x", head="y", model="m", settings={"s": 1})
        ledger.record_leaves(run, [LeafEntry("b/qna.yaml", "k2", "knowledge", "generated", True, {"train": 3}, 7, 0.5)])
        ledger.finish_run(run, status="ok", requests_sent=3, requests_replayed=0, tokens=7, seconds=1.0)
        assert ledger.runs()[0]["status"] == "ok"
        asyncio.run(LedgerTeacher(CountingTeacher(), ledger, leaf_key="k1").complete([req("a")]))
        asyncio.run(LedgerTeacher(CountingTeacher(), ledger, leaf_key="k2").complete([req("b")]))
        assert ledger.prune_requests({"k2"}) == 1
        assert ledger.count_responses() == 1


def test_schema_version_is_recorded_and_an_old_ledger_migrates(tmp_path: Path) -> None:

    from labtax.errors import UsageError
    from labtax.sdg.ledger import SCHEMA_VERSION

    # A ledger written before versions were recorded: user_version 0, one table and one row.
    old = tmp_path / "old.sqlite"
    conn = sqlite3.connect(old)
    conn.executescript("CREATE TABLE verified(key TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL);"
                       "INSERT INTO verified VALUES('k', 1, 2);")
    conn.close()
    with Ledger(old) as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION
        assert ledger.verified() == {"k": (1, 2)} and ledger.memo() == {}  # kept, and the rest created
    with Ledger(old) as again:
        assert again.schema_version() == SCHEMA_VERSION
    # A ledger from a newer labtax is refused with one line, not misread.
    conn = sqlite3.connect(old)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(UsageError, match="newer than this labtax"):
        Ledger(old)


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as ledger:
        with pytest.raises(RuntimeError), ledger.transaction():
            ledger.conn.execute("INSERT INTO verified VALUES('k', 1, 2)")
            raise RuntimeError("boom")
        assert ledger.verified() == {}
