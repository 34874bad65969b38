"""`labtax diff-generate` end to end: real git repositories, the real OpenAI-protocol test server."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from gitrepo import GitRepo
from lab_taxonomy import (
    add_knowledge,
    add_skill,
    copy_generated,
    manifest,
    prompts_of,
    read_jsonl,
    run_cli,
    teacher_args,
)

from labtax.data.sample import chunk_of, question_of, user_text
from labtax.errors import EXIT_TEACHER
from labtax.sdg.output_dir import output_lock


def dg(repo, out: Path, server, *extra: str, base: str = "empty") -> tuple[int, str]:  # type: ignore[no-untyped-def]
    return run_cli(["diff-generate", "--taxonomy", str(repo.root), "--base", base, "--output", str(out),
                    *extra, *teacher_args(server)])


def small_taxonomy(repo) -> None:  # type: ignore[no-untyped-def]
    add_skill(repo, "compositional_skills/writing/haiku")
    add_skill(repo, "compositional_skills/writing/summary", grounded=True)
    add_skill(repo, "foundational_skills/math/sums")
    add_knowledge(repo, "knowledge/astro/moon")
    repo.commit("taxonomy")


def set_leaves(out: Path, name: str) -> set[str]:
    return {s["metadata"]["leaf"] for s in read_jsonl(out / name)}


@dataclass(frozen=True)
class Generated:
    """small_taxonomy generated once with `--head HEAD` against the test server (the start of most tests
    here): the repository, the output folder, the run's text and the bodies of the requests it sent."""

    repo: Path
    out: Path
    text: str
    bodies: tuple[str, ...]

    def copy(self, tmp_path: Path) -> tuple[GitRepo, Path]:
        """This test's own copies of the repository and the output folder (store, ledger, sets)."""
        return copy_generated(self.repo, self.out, tmp_path)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """One generation of small_taxonomy for the tests that begin with it: each copies the result
    (milliseconds) instead of generating it again (~0.7 CPU-s a test)."""
    from openai_server import OpenAIServer, lab_responder

    root = tmp_path_factory.mktemp("generated")
    repo = GitRepo(root / "repo")
    small_taxonomy(repo)
    with OpenAIServer(lab_responder()) as server:
        code, text = dg(repo, root / "out", server, "--head", "HEAD")
        assert code == 0, text
        return Generated(repo.root, root / "out", text, tuple(str(r.body) for r in server.requests))


def test_second_run_makes_zero_requests(generated, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    git_repo, out = generated.copy(tmp_path)
    assert generated.bodies  # the first run asked the teacher
    first = openai_server.count()  # this test's server: 0
    sets_before = {n: (out / n).read_bytes() for n in ("phase1_knowledge.jsonl", "phase2_skills.jsonl", "test.jsonl")}
    code, text = dg(git_repo, out, openai_server, "--head", "HEAD")
    assert code == 0, text
    assert "nothing to generate" in text
    assert openai_server.count() == first
    assert {n: (out / n).read_bytes() for n in sets_before} == sets_before
    m = manifest(out)
    assert {e["status"] for e in m["leaves"]} == {"reused"}
    assert all(e["changed"] for e in m["leaves"])  # --base empty: every leaf is "added"
    # Nothing changed between HEAD and HEAD itself.
    code, text = dg(git_repo, out, openai_server, "--head", "HEAD", base="HEAD")
    assert code == 0 and "nothing to generate" in text
    assert openai_server.count() == first
    assert not any(e["changed"] for e in manifest(out)["leaves"])


def test_manifest_and_sets_formats(generated, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    git_repo, out = generated.copy(tmp_path)
    m = manifest(out)
    assert m["head"] == git_repo.head() and m["base"] and m["teacher_model"] == "openai:test-model"
    assert m["settings"]["samples_per_leaf"] == 2 and m["settings"]["seed"] == 7
    assert m["settings"]["mc_per_leaf"] == 10  # --mc-per-leaf's default (0: test_knowledge_loop)
    leaves = {e["path"]: e for e in m["leaves"]}
    assert set(leaves) == {"compositional_skills/writing/haiku/qna.yaml", "compositional_skills/writing/summary/qna.yaml",
                           "foundational_skills/math/sums/qna.yaml", "knowledge/astro/moon/qna.yaml"}
    for e in leaves.values():
        assert e["status"] == "generated" and e["changed"] is True and len(e["key"]) == 64
        assert e["counts"]["samples"] >= 1 and e["tokens"] > 0 and e["seconds"] >= 0
    for name, info in m["sets"].items():
        assert len(read_jsonl(out / name)) == info["samples"]
    phase1 = read_jsonl(out / "phase1_knowledge.jsonl")
    assert phase1 and all(s["metadata"]["kind"] == "knowledge" for s in phase1)
    # Rows that teach recall (issue 20): open-book rows (chunk above the question, loss on all of it),
    # closed-book rows (the question alone, loss on the answer) and the chunks themselves.
    open_book = [s for s in phase1 if not s["metadata"].get("closed_book") and s["metadata"].get("source") != "document"]
    closed = [s for s in phase1 if s["metadata"].get("closed_book")]
    docs = [s for s in phase1 if s["metadata"].get("source") == "document"]
    assert len(open_book) == len(closed) and docs and len(open_book) + len(closed) + len(docs) == len(phase1)
    assert all(s["unmask"] is True and chunk_of(s) and chunk_of(s) in user_text(s) for s in open_book)
    assert all(s["unmask"] is False and user_text(s) == question_of(s) for s in closed)
    phase2 = read_jsonl(out / "phase2_skills.jsonl")
    assert {s["metadata"]["kind"] for s in phase2 if not s["metadata"].get("replay")} == {
        "compositional_skills", "foundational_skills"}
    # Replay: at least ceil(3% of skills) and at least 10 rows of the knowledge leaf (or all it has),
    # each replayed row followed by its unmasked copy.
    moon = next(e for e in m["leaves"] if e["kind"] == "knowledge")["counts"]
    assert moon["replay"] == min(10, moon["train"]) and moon["replay"] >= 1
    assert sum(1 for s in phase2 if s["metadata"].get("replay")) == 3 * moon["replay"]  # + closed-book copy
    test = read_jsonl(out / "test.jsonl")
    # The seeds, plus the knowledge leaf's closed-book multiple-choice items (issue 14) and one held-out
    # wording of each fact that has two or more (issue 20: the pairs of a fact share metadata.fact).
    seeds = [t for t in test if t["metadata"]["source"] == "seed"]
    mc = [t for t in test if t["metadata"]["source"] == "mc"]
    held = [t for t in test if t["metadata"]["source"] == "held_out"]
    assert len(seeds) == 5 + 5 + 5 + 15 and len(seeds) + len(mc) + len(held) == len(test)
    assert all(t["metadata"].get("fact") and t["metadata"].get("closed_book") for t in held)
    assert {t["metadata"]["leaf"] for t in seeds} == set(leaves)
    assert mc and {t["metadata"]["leaf"] for t in mc} == {"knowledge/astro/moon/qna.yaml"}
    assert all(t["choices"][t["answer_index"]] == t["messages"][-1]["content"] for t in mc)
    validation = read_jsonl(out / "validation.jsonl")
    assert validation and all(v["metadata"]["split"] == "validation" for v in validation)
    assert not {user_text(v) for v in validation} & {
        user_text(s) for s in phase1 + phase2}
    grounded = [t for t in test if t["metadata"]["leaf"].endswith("summary/qna.yaml")]
    assert all(user_text(t).startswith("A paragraph of background") for t in grounded)
    train_users = {user_text(s) for s in phase1 + phase2}
    assert not train_users & {user_text(t) for t in test}
    # The ledger recorded the run.
    import sqlite3
    con = sqlite3.connect(out / "ledger.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT status FROM runs").fetchall() == [("ok",)]
    assert con.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == len(generated.bodies)


def test_change_one_leaf_of_twenty(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for i in range(20):
        add_skill(git_repo, f"compositional_skills/topic{i:02d}/leaf", topic=f"topic{i:02d}")
    base = git_repo.commit("twenty")
    out = tmp_path / "out"
    assert dg(git_repo, out, openai_server)[0] == 0
    openai_server.reset()
    git_repo.write("compositional_skills/topic07/leaf/qna.yaml",
                   git_repo.root.joinpath("compositional_skills/topic07/leaf/qna.yaml").read_text()
                   .replace("way 3.", "a brand new way."))
    git_repo.commit("change topic07")
    code, text = dg(git_repo, out, openai_server, "--head", "HEAD", base=base)
    assert code == 0, text
    assert openai_server.count() > 0
    prompts = prompts_of(openai_server)
    # Every request was built from topic07's seeds only.
    assert all("topic07" in p for p in prompts if "STAGE: questions" in p)
    assert not any(f"topic{i:02d}" in p for p in prompts for i in range(20) if i != 7)
    entries = {e["path"]: e for e in manifest(out)["leaves"]}
    assert entries["compositional_skills/topic07/leaf/qna.yaml"]["status"] == "generated"
    assert entries["compositional_skills/topic07/leaf/qna.yaml"]["changed"] is True
    assert sum(e["status"] == "reused" for e in entries.values()) == 19
    assert not any(e["changed"] for p, e in entries.items() if "topic07" not in p)


def test_rename_reindent_and_author_change_make_zero_requests(generated, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    git_repo, out = generated.copy(tmp_path)
    before = openai_server.count()
    old_samples = [s for s in read_jsonl(out / "phase2_skills.jsonl")
                   if s["metadata"]["leaf"] == "compositional_skills/writing/haiku/qna.yaml"]

    # Rename (git mv) a leaf folder.
    (git_repo.root / "compositional_skills/poetry").mkdir()
    git_repo.git("mv", "compositional_skills/writing/haiku", "compositional_skills/poetry/haiku")
    base = git_repo.head()
    git_repo.commit("rename")
    code, text = dg(git_repo, out, openai_server, "--head", "HEAD", base=base)
    assert code == 0 and "nothing to generate" in text, text
    assert openai_server.count() == before
    entries = {e["path"]: e for e in manifest(out)["leaves"]}
    moved = entries["compositional_skills/poetry/haiku/qna.yaml"]
    assert moved["status"] == "reused" and moved["changed"] is True
    assert "compositional_skills/writing/haiku/qna.yaml" not in entries
    new_samples = [s for s in read_jsonl(out / "phase2_skills.jsonl")
                   if s["metadata"]["leaf"] == "compositional_skills/poetry/haiku/qna.yaml"]
    assert [s["messages"] for s in new_samples] == [s["messages"] for s in old_samples]
    assert "compositional_skills/writing/haiku/qna.yaml" not in set_leaves(out, "test.jsonl")

    # Re-indent and reorder keys, and change the author: same content for generation.
    path = "foundational_skills/math/sums/qna.yaml"
    import yaml
    data = yaml.safe_load(git_repo.root.joinpath(path).read_text())
    data["created_by"] = "someone-else"
    git_repo.write(path, yaml.safe_dump(dict(reversed(list(data.items()))), indent=4, sort_keys=False))
    base = git_repo.head()
    git_repo.commit("reindent")
    code, text = dg(git_repo, out, openai_server, "--head", "HEAD", base=base)
    assert code == 0 and "nothing to generate" in text, text
    assert openai_server.count() == before
    assert {e["path"]: e for e in manifest(out)["leaves"]}[path]["changed"] is True


def test_delete_then_gc(generated, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    git_repo, out = generated.copy(tmp_path)
    before = openai_server.count()
    gone = "knowledge/astro/moon/qna.yaml"
    key = {e["path"]: e["key"] for e in manifest(out)["leaves"]}[gone]
    store_file = out / "leaves" / key[:2] / f"{key}.jsonl"
    assert store_file.exists()
    git_repo.git("rm", "-r", "-q", "knowledge/astro/moon")
    base = git_repo.head()
    git_repo.commit("delete")
    code, text = dg(git_repo, out, openai_server, "--head", "HEAD", base=base)
    assert code == 0, text
    assert openai_server.count() == before
    assert f"drop      {gone}" in text
    assert read_jsonl(out / "phase1_knowledge.jsonl") == []
    assert not any(s["metadata"].get("replay") for s in read_jsonl(out / "phase2_skills.jsonl"))
    assert gone not in set_leaves(out, "test.jsonl")
    entry = {e["path"]: e for e in manifest(out)["leaves"]}[gone]
    assert entry["status"] == "dropped" and entry["key"] == key
    assert store_file.exists()  # kept until gc

    code, text = run_cli(["gc", "--output", str(out), "--dry-run"])
    assert code == 0 and key in text and store_file.exists()
    import sqlite3
    con = sqlite3.connect(out / "ledger.sqlite")
    assert con.execute("SELECT COUNT(*) FROM requests WHERE leaf_key=?", (key,)).fetchone()[0] > 0
    code, text = run_cli(["gc", "--output", str(out)])
    assert code == 0, text
    assert not store_file.exists()
    assert con.execute("SELECT COUNT(*) FROM requests WHERE leaf_key=?", (key,)).fetchone()[0] == 0
    assert con.execute("SELECT COUNT(*) FROM requests").fetchone()[0] > 0
    assert len(list((out / "leaves").rglob("*.jsonl"))) == 3
    # The sets still build from what is left, with no teacher call.
    code, text = dg(git_repo, out, openai_server, "--head", "HEAD", base="HEAD")
    assert code == 0 and openai_server.count() == before


def test_first_run_with_a_base_generates_every_leaf_missing_from_the_store(git_repo, openai_server,  # type: ignore[no-untyped-def]
                                                                            tmp_path: Path) -> None:
    small_taxonomy(git_repo)
    base = git_repo.head()
    add_skill(git_repo, "compositional_skills/writing/new")
    git_repo.commit("one more")
    out = tmp_path / "out"
    code, text = dg(git_repo, out, openai_server, "--head", "HEAD", "--dry-run", base=base)
    assert code == 0 and openai_server.count() == 0
    assert not out.exists()  # a dry run writes nothing
    assert "generate  compositional_skills/writing/new/qna.yaml: added" in text
    assert "generate  compositional_skills/writing/haiku/qna.yaml: not in the store" in text
    assert "5 to generate, 0 to reuse" in text
    code, text = dg(git_repo, out, openai_server, "--head", "HEAD", base=base)
    assert code == 0, text
    entries = {e["path"]: e for e in manifest(out)["leaves"]}
    assert {e["status"] for e in entries.values()} == {"generated"}
    assert [p for p, e in entries.items() if e["changed"]] == ["compositional_skills/writing/new/qna.yaml"]


def test_working_tree_head_and_dry_run_plan(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    small_taxonomy(git_repo)
    out = tmp_path / "out"
    assert dg(git_repo, out, openai_server)[0] == 0  # working tree
    before = openai_server.count()
    add_skill(git_repo, "compositional_skills/writing/draft")  # untracked, not committed
    code, text = dg(git_repo, out, openai_server, "--dry-run", base="HEAD")
    assert code == 0 and openai_server.count() == before
    assert "generate  compositional_skills/writing/draft/qna.yaml: added" in text
    assert "1 to generate, 4 to reuse, 0 to drop" in text
    assert "estimated <= " in text
    code, text = dg(git_repo, out, openai_server, base="HEAD")
    assert code == 0 and openai_server.count() > before
    # A local document edit (working tree) changes the knowledge leaf's key.
    before = openai_server.count()
    doc = git_repo.root / ".documents/moon/moon.md"
    doc.write_text(doc.read_text() + "\nA third paragraph about quartz harbors.\n")
    code, text = dg(git_repo, out, openai_server, base="HEAD")
    assert code == 0, text
    assert openai_server.count() > before
    assert {e["path"]: e for e in manifest(out)["leaves"]}["knowledge/astro/moon/qna.yaml"]["status"] == "generated"


def test_corrupted_store_file_is_regenerated_not_used(generated, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    git_repo, out = generated.copy(tmp_path)
    text = generated.text
    # The run's generation meter: requests and tokens across leaves (at least its closing line).
    assert re.search(r"^teacher: \d+/<=\d+ requests, [\d,]+ tokens, ", text, re.MULTILINE), text
    sets = {n: (out / n).read_bytes() for n in ("phase1_knowledge.jsonl", "phase2_skills.jsonl", "test.jsonl")}
    entries = {e["path"]: e["key"] for e in manifest(out)["leaves"]}
    for damage in (lambda b: b[: len(b) // 2], lambda b: b.replace(b"careful", b"carefree", 1)):
        key = entries["compositional_skills/writing/haiku/qna.yaml"]
        f = out / "leaves" / key[:2] / f"{key}.jsonl"
        f.write_bytes(damage(f.read_bytes()))
        code, text = dg(git_repo, out, openai_server, "--head", "HEAD", base="HEAD")
        assert code == 0, text
        assert "generated compositional_skills/writing/haiku/qna.yaml" in text
        status = {e["path"]: e["status"] for e in manifest(out)["leaves"]}
        assert status["compositional_skills/writing/haiku/qna.yaml"] == "generated"
        assert {n: (out / n).read_bytes() for n in sets} == sets  # same data again, the damage unused
    # Damage hidden behind the same size and mtime passes the cheap check, but is caught by the
    # checksum when the sets are rebuilt (another leaf changed): regenerated, never used.
    key = entries["compositional_skills/writing/haiku/qna.yaml"]
    f = out / "leaves" / key[:2] / f"{key}.jsonl"
    st = f.stat()
    f.write_bytes(f.read_bytes().replace(b"careful", b"carefXl", 1))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    base = git_repo.head()
    git_repo.git("rm", "-r", "-q", "foundational_skills/math/sums")
    git_repo.commit("drop one")
    code, text = dg(git_repo, out, openai_server, "--head", "HEAD", base=base)
    assert code == 0, text
    assert "generated compositional_skills/writing/haiku/qna.yaml" in text
    phase2 = read_jsonl(out / "phase2_skills.jsonl")
    assert not any("carefXl" in s["messages"][-1]["content"] for s in phase2)
    assert sum("careful" in s["messages"][-1]["content"] for s in phase2) > 0
    # The regenerations replayed the ledger: no request was sent twice.
    bodies = [*generated.bodies, *(str(r.body) for r in openai_server.requests)]
    assert len(bodies) == len(set(bodies))


def test_concurrent_run_is_refused(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    small_taxonomy(git_repo)
    out = tmp_path / "out"
    with output_lock(out):
        code, text = dg(git_repo, out, openai_server, "--head", "HEAD")
        assert code == 4
        assert "in use by another labtax run" in text
        code, text = run_cli(["gc", "--output", str(out)])
        assert code in (2, 4)
    assert openai_server.count() == 0
    assert not (out / "manifest.json").exists()
    assert dg(git_repo, out, openai_server, "--head", "HEAD")[0] == 0


def test_invalid_leaf_is_reported_and_skipped(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    small_taxonomy(git_repo)
    git_repo.write("compositional_skills/broken/qna.yaml", "version: 2\nseed_examples: [unclosed\n")
    git_repo.commit("broken")
    out = tmp_path / "out"
    code, text = dg(git_repo, out, openai_server, "--head", "HEAD")
    assert code == 1, text
    assert "invalid   compositional_skills/broken/qna.yaml" in text
    entries = {e["path"]: e for e in manifest(out)["leaves"]}
    assert entries["compositional_skills/broken/qna.yaml"]["status"] == "invalid"
    assert sum(e["status"] == "generated" for e in entries.values()) == 4


@pytest.mark.parametrize("fmt", ["json"])
def test_json_output(git_repo, openai_server, tmp_path: Path, fmt: str) -> None:  # type: ignore[no-untyped-def]
    import json
    small_taxonomy(git_repo)
    out = tmp_path / "out"
    code, text = dg(git_repo, out, openai_server, "--head", "HEAD", "--dry-run", "--format", fmt)
    assert code == 0
    plan = json.loads(text)
    assert plan["dry_run"] is True and plan["summary"]["generate"] == 4 and plan["estimated_requests"] > 0


def test_failed_requests_are_retried_alone_on_the_next_run(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from openai_server import Fault, fail_first, lab_responder

    small_taxonomy(git_repo)
    out = tmp_path / "out"

    def haiku_answers(kind: str, body: dict) -> bool:  # type: ignore[type-arg]
        text = str(body.get("messages"))
        return "STAGE: answer" in text and "haiku" in text

    # 400 is not retried by the teacher: each haiku answer request fails once, then works.
    openai_server.responder = fail_first(lab_responder(), Fault(400), times=1, match=haiku_answers)
    code, text = dg(git_repo, out, openai_server, "--head", "HEAD")
    assert code == EXIT_TEACHER, text
    assert "1 leaves failed" in text
    entries = {e["path"]: e for e in manifest(out)["leaves"]}
    assert entries["compositional_skills/writing/haiku/qna.yaml"]["status"] == "failed"
    assert sum(e["status"] == "generated" for e in entries.values()) == 3
    assert "compositional_skills/writing/haiku/qna.yaml" not in set_leaves(out, "test.jsonl")
    failed_bodies = [str(r.body) for r in openai_server.requests if r.status == 400]
    assert failed_bodies
    before = openai_server.count()

    code, text = dg(git_repo, out, openai_server, "--head", "HEAD")
    assert code == 0, text
    resent = [str(r.body) for r in openai_server.requests[before:]]
    # Only the failed requests went out again (their answers then let later stages run).
    assert set(failed_bodies) <= set(resent)
    assert not set(resent) & {str(r.body) for r in openai_server.requests[:before] if r.status == 200}
    assert {e["path"]: e for e in manifest(out)["leaves"]}["compositional_skills/writing/haiku/qna.yaml"][
        "status"] == "generated"


def test_a_dead_teacher_stops_the_run_early(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from openai_server import Fault

    for i in range(12):
        add_skill(git_repo, f"compositional_skills/t{i:02d}/leaf")
    git_repo.commit("twelve")
    openai_server.responder = lambda kind, body: Fault(400)
    out = tmp_path / "out"
    code, text = run_cli(["diff-generate", "--taxonomy", str(git_repo.root), "--base", "empty", "--head", "HEAD",
                          "--output", str(out), *teacher_args(openai_server), "--max-requests-per-leaf", "1"])
    assert code == EXIT_TEACHER, text
    assert "starting no further leaf" in text
    # At most the leaves already in flight (4 at a time) asked anything.
    asked = {r.body["seed"] for r in openai_server.requests}
    assert 0 < openai_server.count() <= 4 * 2 and len(asked) <= 8
    assert {e["status"] for e in manifest(out)["leaves"]} == {"failed"}


def test_a_run_with_nothing_to_generate_never_builds_the_teacher(generated, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    git_repo, out = generated.copy(tmp_path)
    argv = ["diff-generate", "--taxonomy", str(git_repo.root), "--base", "HEAD", "--head", "HEAD", "--output",
            str(out), *teacher_args(openai_server)]
    script = ("import sys\nfrom labtax.cli import cli\n"
              f"try:\n    cli({argv!r}, standalone_mode=False)\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
              "print('teacher built:', 'labtax.teachers.openai' in sys.modules, 'torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "nothing to generate" in proc.stdout
    assert "teacher built: False False" in proc.stdout


def test_predicted_model_id_is_the_teachers(openai_server) -> None:  # type: ignore[no-untyped-def]
    from labtax import models
    from labtax.teachers import make_teacher
    from labtax.teachers.lazy import LazyTeacher, teacher_model_id

    real = make_teacher("openai", endpoints=[openai_server.base_url], model="test-model")
    assert teacher_model_id("openai", "test-model") == real.model_id
    discovered = make_teacher("openai", endpoints=[openai_server.base_url])  # asks GET /v1/models
    lazy = LazyTeacher(lambda: make_teacher("openai", endpoints=[openai_server.base_url]), None)
    assert lazy.model_id == discovered.model_id == "openai:test-model"
    assert teacher_model_id("embedded", None) == models.model_id("embedded")
    assert teacher_model_id("vllm", "some/model") == "vllm:some/model"


def test_the_store_not_the_diff_decides(generated, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Changes outside the diffed range are still seen: a document edited in an earlier commit makes
    its leaf's key change (the memo's folder fingerprint), a leaf deleted earlier leaves the sets."""
    git_repo, out = generated.copy(tmp_path)
    before = openai_server.count()
    keys = {e["path"]: e["key"] for e in manifest(out)["leaves"]}

    doc = git_repo.root / ".documents/moon/moon.md"
    doc.write_text(doc.read_text() + "\nA new paragraph on copper beacons.\n")
    git_repo.git("rm", "-r", "-q", "foundational_skills/math/sums")
    head = git_repo.commit("edit a document, delete a leaf")
    # The diffed range (HEAD..HEAD) is empty, yet both changes are acted on.
    code, text = dg(git_repo, out, openai_server, "--head", head, base=head)
    assert code == 0, text
    entries = {e["path"]: e for e in manifest(out)["leaves"]}
    moon = entries["knowledge/astro/moon/qna.yaml"]
    assert moon["status"] == "generated" and moon["changed"] is False
    assert moon["key"] != keys["knowledge/astro/moon/qna.yaml"]
    assert openai_server.count() > before
    assert entries["foundational_skills/math/sums/qna.yaml"]["status"] == "dropped"
    assert "drop      foundational_skills/math/sums/qna.yaml: no longer at head" in text
    assert "foundational_skills/math/sums/qna.yaml" not in set_leaves(out, "test.jsonl")
    assert entries["compositional_skills/writing/haiku/qna.yaml"]["status"] == "reused"
