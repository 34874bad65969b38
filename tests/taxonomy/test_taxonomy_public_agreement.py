"""labtax agrees with the public `instructlab-schema` 0.4.2 validator on every example.

The public package is never a labtax dependency: scripts/bootstrap.sh installs it into its own
`pip install --target` folder, `ilab-schema` inside the virtualenv (or $LABTAX_ILAB_SCHEMA), so this
test runs in CI. Without that folder it is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_taxonomy_examples import BAD, EXAMPLES, GOOD, bad_cases

from labtax.taxonomy.leaves import validate

TARGET = Path(os.environ.get("LABTAX_ILAB_SCHEMA", Path(sys.prefix) / "ilab-schema"))
BASELINE = Path(__file__).parents[2] / "bench" / "ilab_baseline.py"

pytestmark = pytest.mark.skipif(
    not (TARGET / "instructlab" / "schema").is_dir(),
    reason=f"instructlab-schema not installed in {TARGET} (run scripts/bootstrap.sh)",
)


def public_verdicts(files: list[Path]) -> dict[str, bool]:
    """path -> accepted by the public validator (no errors, no exception)."""
    env = {**os.environ, "PYTHONPATH": str(TARGET), "PATH": f"{TARGET / 'bin'}:{os.environ.get('PATH', '')}"}
    # The public parser runs yamllint as a subprocess per file: two halves in parallel halve the wait.
    procs = [subprocess.Popen([sys.executable, str(BASELINE), *map(str, files[i::2])], env=env, cwd=EXAMPLES,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for i in (0, 1)]
    verdicts: dict[str, bool] = {}
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        data = json.loads(out)
        data.pop("_seconds")
        verdicts.update({Path(p).resolve().as_posix(): v["errors"] == 0 and v["exception"] is None
                         for p, v in data.items()})
    return verdicts


def test_labtax_and_public_package_agree() -> None:
    files = sorted(GOOD.rglob("qna.yaml")) + sorted(BAD.rglob("qna.y*ml"))
    verdicts = public_verdicts(files)
    labtax_only = {rel for rel, _rule, only in bad_cases() if only}
    for file in files:
        root = GOOD if GOOD in file.parents else BAD
        rel = file.relative_to(root).as_posix()
        ours = not any(f.severity == "error" for f in validate(root, [rel]))
        theirs = verdicts[file.resolve().as_posix()]
        if root is BAD and rel in labtax_only:
            assert theirs and not ours, f"{rel}: documented as labtax-only, public verdict {theirs}"
        else:
            assert ours == theirs, f"{rel}: labtax accepts={ours}, instructlab-schema accepts={theirs}"
