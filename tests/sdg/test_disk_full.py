"""A full disk during diff-generate: one line naming the path and the cause, exit 2 (I/O), and a
rerun once there is room again continues with nothing lost.

The disk is really full: the output folder is a small tmpfs mounted in a private user and mount
namespace (`unshare -rm`, no root needed), filled with a file up to a few KiB below its size, so
SQLite meets SQLITE_FULL ("database or disk is full") and plain writes ENOSPC exactly as on a full
runner disk. Where user namespaces are not allowed the test is skipped."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lab_taxonomy import add_skill, teacher_args

from labtax.errors import EXIT_OK, EXIT_USAGE


def _namespaces_work() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt || exit 1"],
                           capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _namespaces_work(), reason="no unprivileged user/mount namespaces here")
@pytest.mark.parametrize("free_kib", [8, 640])  # full at the start; full half-way through
def test_a_full_disk_is_one_line_exit_2_and_the_rerun_loses_nothing(git_repo, openai_server, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                    free_kib: int) -> None:
    for name in ("haiku", "limerick", "sonnet"):
        add_skill(git_repo, f"compositional_skills/writing/{name}")
    git_repo.commit("three leaves")
    out, copy = tmp_path / "out", tmp_path / "copy"
    out.mkdir()
    copy.mkdir()
    labtax = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "labtax", "diff-generate", "--taxonomy",
                                                str(git_repo.root), "--base", "empty", "--head", "HEAD",
                                                "--output", str(out), *teacher_args(openai_server, samples=3)])
    size_kib = 16 * 1024  # the whole run takes a few MiB (its ledger WAL alone about 1 MiB)
    script = f"""
mount -t tmpfs -o size={size_kib}k tmpfs {out} || exit 99
head -c {(size_kib - free_kib) * 1024} /dev/zero > {out}/filler
{labtax} >{tmp_path}/first.out 2>{tmp_path}/first.err; echo $? >{tmp_path}/first.rc
rm {out}/filler
{labtax} >{tmp_path}/second.out 2>{tmp_path}/second.err; echo $? >{tmp_path}/second.rc
cp -a {out}/. {copy}/
"""
    proc = subprocess.run(["unshare", "-rm", "bash", "-c", script], capture_output=True, text=True, check=False,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    first_rc = int((tmp_path / "first.rc").read_text())
    first_err = (tmp_path / "first.err").read_text()
    errors = [line for line in first_err.splitlines() if line.startswith("labtax: error:")]
    assert first_rc == EXIT_USAGE, first_err
    assert "Traceback" not in first_err and len(errors) == 1, first_err
    assert str(out) in errors[0] and ("No space left on device" in errors[0] or "disk is full" in errors[0])
    assert not list(copy.glob("*.corrupt")) and not list(copy.rglob("*.tmp"))  # nothing moved aside or left
    second_rc = int((tmp_path / "second.rc").read_text())
    assert second_rc == EXIT_OK, (tmp_path / "second.err").read_text()
    manifest = json.loads((copy / "manifest.json").read_text())
    assert {e["status"] for e in manifest["leaves"]} == {"generated"} and len(manifest["leaves"]) == 3
    if free_kib > 8:  # what the first run had recorded is replayed, not asked again
        assert manifest["run"]["requests_replayed"] > 0, manifest["run"]


@pytest.mark.skipif(not _namespaces_work(), reason="no unprivileged user/mount namespaces here")
def test_a_read_only_output_folder_is_one_line_exit_2(git_repo, openai_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    add_skill(git_repo, "compositional_skills/writing/haiku")
    git_repo.commit("a leaf")
    out = tmp_path / "out"
    out.mkdir()
    labtax = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "labtax", "diff-generate", "--taxonomy",
                                                str(git_repo.root), "--base", "empty", "--head", "HEAD",
                                                "--output", str(out), *teacher_args(openai_server)])
    # Root ignores file modes, so the folder is a read-only mount, as a runner's protected disk is.
    proc = subprocess.run(["unshare", "-rm", "bash", "-c", f"mount -t tmpfs -o ro,size=64k tmpfs {out} && {labtax}"],
                          capture_output=True, text=True, check=False, timeout=300)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("labtax: error:")]
    assert proc.returncode == EXIT_USAGE and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(out) in errors[0] and "Read-only file system" in errors[0]
    assert openai_server.count() == 0
