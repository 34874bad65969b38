"""The seed-noise floor: how far retraining the base's own data moves each leaf by chance.

Two students trained on the same data with only the seed (the data order) changed differ: at the
demo's sizes (five or six references a skill leaf) that alone moved a leaf's likelihood by 5-17 %,
past the gate's 5 % tolerance (docs/train.md, *The comparison's noise floor*). The bootstrap over a
leaf's items does not see it: the items of one model move together. So the gate can be given the
report of an earlier `labtax eval` of the base against the base retrained with another seed
(`--noise-floor`), and an unchanged leaf then regresses only when the candidate is worse, by more
than the tolerance, than *both* retrains of the old data:

    change > tolerance  and  change - noise > tolerance,   i.e.  change > tolerance + max(0, noise)

where `change` is the candidate's likelihood change against the base and `noise` the retrain's
(`change - noise` is, to first order, the candidate's change against the retrain). A retrain that
did better than the base on a leaf does not tighten the test: the base stays one of the two.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from labtax.errors import UsageError
from labtax.eval.record import SCHEMA, EvalReport


@dataclass(frozen=True)
class NoiseFloor:
    """Per leaf, the likelihood change (%) of the base retrained with another seed, against the base."""

    source: str  # the report it was read from, as given
    base_id: str  # labtax.models.model_id of that report's base
    change_pct: Mapping[str, float]


def load_noise_floor(path: Path) -> NoiseFloor:
    """Read an eval report (`--format json`) as a noise floor; a UsageError (exit 2) when it is not one."""
    where = f"--noise-floor {path}"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: cannot read it ({exc.__class__.__name__})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: not JSON (line {exc.lineno}: {exc.msg})",
                         hint="give the report `labtax eval --format json --output FILE` wrote") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise UsageError(f"{where}: not a labtax eval report (schema {SCHEMA})",
                         hint="give the report `labtax eval --format json --output FILE` wrote")
    try:
        report = EvalReport.from_json(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{where}: a malformed eval report ({exc.__class__.__name__}: {exc})") from None
    changes = {row.leaf: row.change_pct for row in report.leaves if row.change_pct is not None}
    return NoiseFloor(str(path), report.base.id, changes)


def check_same_base(floor: NoiseFloor, base_id: str) -> None:
    """The floor must measure this eval's base: another model's noise says nothing about this one."""
    if floor.base_id != base_id:
        raise UsageError(f"--noise-floor {floor.source}: it measured base {floor.base_id}, not {base_id}",
                         hint="evaluate the base against the base retrained with another --seed")
