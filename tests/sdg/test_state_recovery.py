"""State that gets corrupted or raced: a broken ledger or manifest is moved aside and rebuilt from
the store with one line; set files are verified by content hash; gc reads the manifest inside the
lock; a dry run writes nothing and fetches nothing; a document repository that cannot be fetched is
that leaf's fetch error."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from gitrepo import GitRepo
from lab_taxonomy import (
    add_knowledge,
    add_skill,
    copy_generated,
    knowledge_yaml,
    manifest,
    run_cli,
    teacher_args,
)

from labtax.errors import EXIT_TEACHER


def dg(repo, out: Path, server, *extra: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    return run_cli(["diff-generate", "--taxonomy", str(repo.root), "--base", "empty", "--output", str(out),
                    "--head", "HEAD", *extra, *teacher_args(server)])


def _two_leaves(repo) -> None:  # type: ignore[no-untyped-def]
    add_skill(repo, "compositional_skills/writing/haiku")
    add_skill(repo, "foundational_skills/math/sums")
    repo.commit("taxonomy")


def _sets(out: Path) -> dict[str, bytes]:
    return {n: (out / n).read_bytes() for n in ("phase1_knowledge.jsonl", "phase2_skills.jsonl", "test.jsonl")}


@pytest.fixture(scope="module")
def two_leaves(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """_two_leaves generated once a module (the repository, the output folder): the tests that damage
    a healthy output work on their own copy (copy_generated) instead of generating it again."""
    from openai_server import OpenAIServer, lab_responder

    root = tmp_path_factory.mktemp("two-leaves")
    repo = GitRepo(root / "repo")
    _two_leaves(repo)
    with OpenAIServer(lab_responder()) as server:
        code, text = dg(repo, root / "out", server)
    assert code == 0, text
    return repo.root, root / "out"


@pytest.mark.parametrize("damage", ["truncated", "garbage header"])
def test_a_broken_ledger_is_moved_aside_and_rebuilt(two_leaves, openai_server, tmp_path: Path, damage: str) -> None:  # type: ignore[no-untyped-def]
    git_repo, out = copy_generated(*two_leaves, tmp_path)
    sets = _sets(out)
    ledger = out / "ledger.sqlite"
    with sqlite3.connect(ledger) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = ledger.read_bytes()
    ledger.write_bytes(data[: len(data) // 3] if damage == "truncated" else b"garbage!" * 16 + data[128:])
    said = []
    for _ in range(2):  # the first rerun recovers, the second finds a healthy ledger
        code, text = dg(git_repo, out, openai_server)
        assert code == 0 and "Traceback" not in text, text
        said.append(sum("moved aside" in line for line in text.splitlines()))
    assert said == [1, 0]
    assert (out / "ledger.sqlite.corrupt").exists()
    assert _sets(out) == sets  # the store is the truth: the same sets


def test_a_bad_response_row_is_sent_again(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _two_leaves(git_repo)
    out = tmp_path / "out"
    assert dg(git_repo, out, openai_server, "--seed", "1")[0] == 0
    with sqlite3.connect(out / "ledger.sqlite") as conn:
        conn.execute("UPDATE requests SET response = '{not json' WHERE rowid IN (SELECT rowid FROM requests LIMIT 3)")
        conn.execute("UPDATE requests SET response = '[1, 2]' WHERE rowid IN (SELECT rowid FROM requests LIMIT 1 OFFSET 5)")
    (out / "leaves").rename(tmp_path / "store-gone")  # force the replay of those rows
    before = openai_server.count()
    code, text = dg(git_repo, out, openai_server, "--seed", "1")
    assert code == 0, text
    assert openai_server.count() - before == 4  # exactly the damaged rows were asked again


def test_a_broken_manifest_is_moved_aside_and_rebuilt(two_leaves, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    git_repo, out = copy_generated(*two_leaves, tmp_path)
    text = (out / "manifest.json").read_text()
    (out / "manifest.json").write_text(text.replace('"sets": {', '"sets": 5, "x": {', 1))
    code, out_text = dg(git_repo, out, openai_server)
    assert code == 0, out_text
    assert (out / "manifest.json.corrupt").exists()
    assert isinstance(manifest(out)["sets"], dict)
    assert "manifest.json was not a readable manifest" in out_text


def test_a_flipped_byte_in_a_set_file_is_caught_by_its_hash(two_leaves, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    git_repo, out = copy_generated(*two_leaves, tmp_path)
    good = _sets(out)
    path = out / "phase2_skills.jsonl"
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # size and mtime as they were
    code, text = dg(git_repo, out, openai_server)
    assert code == 0 and "sets rebuilt" in text, text
    assert _sets(out) == good


def test_gc_reads_the_manifest_inside_the_lock(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from labtax.sdg.output_dir import output_lock

    add_skill(git_repo, "compositional_skills/writing/haiku")
    git_repo.commit("one leaf")
    out = tmp_path / "out"
    assert dg(git_repo, out, openai_server)[0] == 0
    add_skill(git_repo, "foundational_skills/math/sums")
    git_repo.commit("a second leaf")
    result: dict[str, object] = {}
    held = threading.Event()

    def run_holding_the_lock() -> None:
        # Stands for a diff-generate run: it holds the lock while it writes the new leaf and manifest.
        with output_lock(out):
            held.set()
            time.sleep(1.0)  # gc starts meanwhile, and must wait
            result["code"] = dg(git_repo, out, openai_server)
    thread = threading.Thread(target=run_holding_the_lock)

    import labtax.sdg.output_dir as od
    real_lock = od.output_lock

    def reentrant(output: Path, *, wait: float = 0.0):  # type: ignore[no-untyped-def]
        # The run inside the thread takes the same lock again (same process): let it through.
        if threading.current_thread() is thread:
            import contextlib
            return contextlib.nullcontext()
        return real_lock(output, wait=wait)

    od.output_lock = reentrant  # type: ignore[assignment]
    from labtax.sdg import running
    running.output_lock = reentrant  # type: ignore[assignment]
    try:
        thread.start()
        held.wait()
        code, text = run_cli(["gc", "--output", str(out), "--wait", "60"])
        thread.join()
    finally:
        od.output_lock = real_lock
        running.output_lock = real_lock
    assert code == 0 and result["code"][0] == 0, text  # type: ignore[index]
    assert "removed 0 unreferenced leaf files" in text, text
    keys = {e["key"] for e in manifest(out)["leaves"]}
    stored = {p.stem for p in (out / "leaves").rglob("*.jsonl")}
    assert keys <= stored


def test_a_dry_run_writes_nothing_and_fetches_nothing(git_repo, make_git_repo, openai_server, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("LABTAX_CACHE", str(cache))
    docs = make_git_repo("docs")
    docs.write("moon.md", "# Moon\n\nThe moon report describes craters and tides in detail.\n")
    pinned = docs.commit("docs")
    add_skill(git_repo, "compositional_skills/writing/haiku")
    git_repo.write("knowledge/astro/moon/qna.yaml", knowledge_yaml("moon", f"file://{docs.root}").replace(
        "0" * 40, pinned))
    git_repo.write("knowledge/astro/moon/attribution.txt", "Title of work: t\nLink to work: l\nLicense of the work: x\n")
    git_repo.commit("taxonomy")
    out = tmp_path / "out"
    code, text = dg(git_repo, out, openai_server, "--dry-run")
    assert code == 0, text
    assert "generate  knowledge/astro/moon/qna.yaml: documents not fetched yet (dry run)" in text
    assert not cache.exists() and not out.exists()
    assert openai_server.count() == 0
    assert dg(git_repo, out, openai_server)[0] == 0  # a real run fetches
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    code, text = dg(git_repo, out, openai_server, "--dry-run")
    assert code == 0 and "2 to reuse" in text, text
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing written, nothing created


def test_an_unfetchable_document_repository_is_that_leafs_fetch_error(git_repo, openai_server, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABTAX_CACHE", str(tmp_path / "cache"))
    add_skill(git_repo, "compositional_skills/writing/haiku")
    git_repo.write("knowledge/astro/moon/qna.yaml", knowledge_yaml("moon", f"file://{tmp_path}/no-such-repo").replace(
        "0" * 40, "1" * 40))
    git_repo.write("knowledge/astro/moon/attribution.txt", "Title of work: t\nLink to work: l\nLicense of the work: x\n")
    git_repo.commit("taxonomy")
    out = tmp_path / "out"
    code, text = dg(git_repo, out, openai_server)
    assert code == 1, text
    line = next(x for x in text.splitlines() if "knowledge/astro/moon/qna.yaml" in x)
    assert "cannot fetch the documents" in line
    entries = {e["path"]: e for e in manifest(out)["leaves"]}
    assert entries["compositional_skills/writing/haiku/qna.yaml"]["status"] == "generated"
    assert "cannot fetch the documents" in entries["knowledge/astro/moon/qna.yaml"]["error"]


def test_an_untrusted_store_is_checked_record_by_record(two_leaves, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from labtax.sdg.store import LeafData, LeafStore

    git_repo, out = copy_generated(*two_leaves, tmp_path)
    good = _sets(out)
    # A cache restored from elsewhere: a leaf file with a valid checksum and records that are not samples.
    store = LeafStore(out / "leaves")
    entry = next(e for e in manifest(out)["leaves"] if e["path"] == "compositional_skills/writing/haiku/qna.yaml")
    real = store.load(entry["key"])
    store.put(LeafData(real.key, [{"messages": "FORGED"}] * len(real.samples), real.test, real.meta, real.index))
    code, text = dg(git_repo, out, openai_server, "--untrusted-store")
    assert code == 0, text
    assert "generated compositional_skills/writing/haiku/qna.yaml" in text  # regenerated (replayed)
    assert _sets(out) == good and "FORGED" not in (out / "phase2_skills.jsonl").read_text()


def test_a_leaf_whose_own_document_cannot_be_read_is_a_leaf_error_not_a_teacher_failure(  # type: ignore[no-untyped-def]
        git_repo, openai_server, tmp_path: Path) -> None:
    from fpdf import FPDF
    from openai_server import Fault, lab_responder

    add_skill(git_repo, "compositional_skills/writing/haiku")
    path = add_knowledge(git_repo, "knowledge/astro/moon")
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, "The moon report describes craters, tides and the long lunar night in detail. " * 4)
    doc = git_repo.root / ".documents/moon/moon.pdf"
    pdf.output(str(doc))
    (git_repo.root / ".documents/moon/moon.md").unlink()
    git_repo.write(path, (git_repo.root / path).read_text().replace("'*.md'", "'*.pdf'"))
    git_repo.commit("a knowledge leaf with a PDF")
    base = lab_responder()

    def no_knowledge(kind: str, body: dict) -> object:  # type: ignore[type-arg]
        text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        return Fault(400) if "STAGE: knowledge_qa" in text else base(kind, body)

    openai_server.responder = no_knowledge
    out = tmp_path / "out"
    args = ["diff-generate", "--taxonomy", str(git_repo.root), "--base", "empty", "--output", str(out),
            *teacher_args(openai_server)]  # the working tree, both times
    assert run_cli(args)[0] == EXIT_TEACHER  # the teacher failed it: nothing stored, its key memoised
    openai_server.responder = base
    st = doc.stat()
    doc.write_bytes(b"\0" * st.st_size)  # unreadable now, same size and mtime: the memo still holds
    os.utime(doc, ns=(st.st_atime_ns, st.st_mtime_ns))
    git_repo.commit("the damaged document")
    # --base HEAD: the diff reports no leaf, so the memoised key is used and the document is first read
    # when the leaf is generated.
    code, text = run_cli([*args, "--base", "HEAD"])
    assert code == 1, text
    assert "failed    knowledge/astro/moon/qna.yaml: cannot read PDF" in text
