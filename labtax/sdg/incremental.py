"""`labtax diff-generate` and `labtax gc`: generate only what changed, reuse everything else, re-mix.

This is the entry module: `diff_generate` plans (`labtax.sdg.planning`) and runs
(`labtax.sdg.running`) one diff-generate; `labtax.sdg.output_dir` holds the output directory's
layout, its lock and `collect_garbage`. The names callers import from here are re-exported below,
so `from labtax.sdg.incremental import ...` keeps working whichever module defines them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from labtax.sdg import mix
from labtax.sdg.ledger import Ledger
from labtax.sdg.output_dir import LEAVES_DIR, LEDGER_FILE, LOCK_FILE, GcResult, collect_garbage, output_lock
from labtax.sdg.planning import Action, LeafPlan, Plan, Snapshot, environment, plan_run, watched_dirs
from labtax.sdg.running import MANIFEST_FORMAT, BrokenLeaves, ProgressFn, RunResult, execute, rebuild
from labtax.sdg.store import CorruptLeafError, LeafStore

if TYPE_CHECKING:
    from labtax.sdg.settings import GenerationSettings
    from labtax.sdg.teachers.base import Teacher

__all__ = [
    "LEAVES_DIR", "LEDGER_FILE", "LOCK_FILE", "MANIFEST_FORMAT", "Action", "BrokenLeaves", "GcResult",
    "LeafPlan", "Plan", "ProgressFn", "RunResult", "Snapshot", "collect_garbage", "diff_generate",
    "environment", "execute", "output_lock", "plan_run", "rebuild", "watched_dirs",
]


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
