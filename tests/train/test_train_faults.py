"""A disk that fills up while training and a read-only output folder, for real: `labtax train` in
a private mount namespace on a small tmpfs (unshare; skipped where user namespaces are not allowed).
Each fault is one line with exit 2, leaves no temporary state folder, and a rerun continues."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from train_fixtures import fork_call, fork_cli

ARGS = ["--model", "tiny", "--phase", "knowledge", "--lr", "3e-3", "--epochs", "1", "--effective-batch", "8",
        "--warmup-steps", "2", "--max-seq-len", "512", "--max-tokens-per-batch", "1024", "--save-every", "8",
        "--select", "last"]

# The tiny model's checkpoint is 16 MB, its state (weights + two AdamW moments) 38 MB: after step 1 the
# run holds 54 MB, step 2's checkpoint brings it to 70 MB, and its state needs 38 MB more. On 90 MB the
# disk fills while step 2's state is written.
TMPFS_MB = 90


def _namespace_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt && umount /mnt"],
                           capture_output=True, check=False)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _namespace_works(), reason="needs unshare -rm and a tmpfs mount")


def _enter_namespace() -> None:
    """Make this (single-threaded, forked) process root of a user namespace with a mount namespace of
    its own, as `unshare -rm` does: it may then mount a tmpfs that no other process sees."""
    import ctypes

    uid, gid = os.getuid(), os.getgid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000 | 0x00020000) != 0:  # CLONE_NEWUSER | CLONE_NEWNS
        raise OSError(ctypes.get_errno(), "unshare")
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
    Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)


def test_disk_full_and_read_only_output_are_one_line_and_a_rerun_continues(short_data_dir: Path, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    report = tmp_path / "report"
    report.mkdir()

    def train(out: str, name: str) -> None:  # `labtax train` as a process of its own: its exit code, its stderr
        run = fork_cli(["train", "--data", str(short_data_dir), "--output", f"{mnt}/{out}", *ARGS], report / f"{name}.err")
        (report / f"{name}.rc").write_text(str(run.wait(timeout=600)))

    def faults() -> int:
        # One process forked from this one enters the namespace and runs `labtax train` three times, each
        # forked from it in turn: the tmpfs is seen by them alone, and none pays a fresh interpreter's
        # ~7 CPU-s of imports (three `python -m labtax` under `unshare -rm sh` cost 18 CPU-s).
        _enter_namespace()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs", str(mnt)], check=True)
        train("run", "full")
        (report / "full.ls").write_text("\n".join(os.listdir(mnt / "run" / "knowledge")))
        (report / "full.checkpoints").write_text("\n".join(os.listdir(mnt / "run" / "knowledge" / "checkpoints")))
        subprocess.run(["mount", "-o", "remount,size=400m", str(mnt)], check=True)
        train("run", "again")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        train("other", "ro")
        return 0

    done = fork_call(faults, tmp_path / "namespace.log")
    assert done.wait(timeout=900) == 0, done.output()[-3000:]
    def read(name: str) -> str:
        return (report / name).read_text()

    # The disk filled while step 2's state was written: one line, exit 2, nothing half-written left.
    full = read("full.err")
    assert read("full.rc").strip() == "2", full[-3000:]
    errors = [line for line in full.splitlines() if line.startswith("labtax: error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "Traceback" not in full
    assert "state" in errors[0]
    assert not any(name.startswith(".") and "tmp" in name for name in read("full.ls").split())
    assert not any("tmp" in name for name in read("full.checkpoints").split())
    assert "state" in read("full.ls").split()  # step 1's state stayed

    # With room again, the same command continues from the saved state and finishes.
    again = read("again.err")
    assert read("again.rc").strip() == "0", again[-3000:]
    assert "resuming at step 1/3" in again

    # A read-only output folder: one line naming it, exit 2.
    ro = read("ro.err")
    assert read("ro.rc").strip() == "2", ro[-3000:]
    assert ro.count("labtax: error:") == 1 and "Read-only file system" in ro and "Traceback" not in ro
