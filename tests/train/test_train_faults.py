"""A disk that fills up while training and a read-only output folder, for real: `labtax train` in
a private mount namespace on a small tmpfs (unshare; skipped where user namespaces are not allowed).
Each fault is one line with exit 2, leaves no temporary state folder, and a rerun continues."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from train_fixtures import REPO

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


def test_disk_full_and_read_only_output_are_one_line_and_a_rerun_continues(data_dir: Path, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    report = tmp_path / "report"
    report.mkdir()
    train = " ".join([sys.executable, "-m", "labtax", "train", "--data", str(data_dir), "--output", f"{mnt}/run",
                      *ARGS])
    script = f"""
        set -u
        mount -t tmpfs -o size={TMPFS_MB}m tmpfs {mnt}
        {train} 2>{report}/full.err; echo $? >{report}/full.rc
        ls -A {mnt}/run/knowledge >{report}/full.ls
        ls -A {mnt}/run/knowledge/checkpoints >{report}/full.checkpoints
        mount -o remount,size=400m {mnt}
        {train} 2>{report}/again.err; echo $? >{report}/again.rc
        mount -o remount,ro {mnt}
        {train.replace(f"{mnt}/run", f"{mnt}/other")} 2>{report}/ro.err; echo $? >{report}/ro.rc
    """
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stderr

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
