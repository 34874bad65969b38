"""The diff-generate output directory: its layout, the lock that serialises runs on it, and
`labtax gc` (`collect_garbage`), which frees the store of data no current leaf references.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from labtax.data import MANIFEST, read_manifest
from labtax.errors import LockedError, UsageError
from labtax.sdg.ledger import Ledger
from labtax.sdg.store import LeafStore
from labtax.util.lock import directory_lock

LEDGER_FILE = "ledger.sqlite"
LEAVES_DIR = "leaves"


# ------------------------------------------------------------------------------------- locking


@contextmanager
def output_lock(output: Path, *, wait: float = 0.0) -> Iterator[None]:
    """Hold `<output>/.lock` (fcntl.flock, released by the kernel even on SIGKILL). Raises LockedError
    when another run holds it and it is not released within `wait` seconds."""
    def busy(pid: str) -> LockedError:
        return LockedError(f"output directory {output} is in use by another labtax run (pid {pid})",
                           hint="wait for it to finish, or pass --wait SECONDS")

    with directory_lock(output, wait=wait, busy=busy):
        yield

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
    store = LeafStore(output / LEAVES_DIR)
    with output_lock(output, wait=wait):
        # Read under the lock: a manifest read before it could predate a run that just finished, and
        # its new leaves (and their ledger responses) would be deleted as unreferenced.
        manifest = read_manifest(output)
        if manifest is None:
            raise UsageError(f"no {MANIFEST} in {output}: nothing says which data is current",
                             hint="run labtax diff-generate first")
        keep = {e.key for e in manifest.leaves if e.has_data and e.key}
        # A failed leaf has no store file yet, but its recorded responses are what its next run replays.
        resumable = keep | {e.key for e in manifest.leaves if e.status == "failed" and e.key}
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


def quarantine_manifest(output: Path) -> bool:
    """A manifest.json that cannot be read as one is moved aside to manifest.json.corrupt (one line
    on stderr): the store is the truth, and this run writes a new manifest from it."""
    import os
    import sys

    path = output / MANIFEST
    if not path.is_file() or read_manifest(output) is not None:
        return False
    os.replace(path, path.with_name(path.name + ".corrupt"))
    sys.stderr.write(f"labtax: {path} was not a readable manifest; moved aside to {path.name}.corrupt, "
                     "rebuilt from the store\n")
    return True
