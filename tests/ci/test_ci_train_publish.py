"""hooks/ci-train.sh (train, pick the chosen checkpoint, eval as markdown into the job summary,
eval's exit code) and hooks/ci-publish.sh (checkpoints copied to a configured place).

ci-train.sh is run against a stand-in labtax that records its calls and writes what `labtax train`
writes (OUTPUT/<phase>/result.json): the real train and eval run in the demo; here it is the
script's own plumbing under test."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cihelpers import HOOKS, run

STAND_IN = """#!{python}
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(json.dumps(args) + "\\n")
opt = dict(zip(args[1::2], args[2::2]))
if args[0] == "train":
    out = Path(opt["--output"])
    # Without --model/--phase the real command takes them from .labtax.yaml (else its defaults).
    model = opt.get("--model", "model-from-labtax-yaml")
    phases = {{"all": ["knowledge", "skills"]}}.get(opt.get("--phase", "all"), [opt.get("--phase")])
    results, start = {{}}, model
    for phase in phases:
        ckpt = out / phase / "checkpoints" / "samples_8"
        ckpt.mkdir(parents=True, exist_ok=True)
        (ckpt / "model.safetensors").write_text("weights")
        (out / phase / "state").mkdir(exist_ok=True)
        (out / phase / "state" / "optimizer.pt").write_text("big")
        results[phase] = {{"start": start, "selected": {{"path": str(ckpt)}}}}
        (out / phase / "result.json").write_text(json.dumps(results[phase]))
        start = str(ckpt)
    (out / "summary.json").write_text(json.dumps({{"phases": results, "final": str(ckpt)}}))
    sys.exit(0)
if args[0] == "eval":
    print("| leaf | base | candidate |\\n|---|---|---|\\n| knowledge/x | 2.0 | 2.5 |")
    sys.exit({eval_code})
sys.exit(2)
"""


def stand_in(tmp_path: Path, eval_code: int) -> tuple[str, Path]:
    log = tmp_path / "calls.jsonl"
    path = tmp_path / "labtax"
    path.write_text(STAND_IN.format(python=sys.executable, log=str(log), eval_code=eval_code))
    path.chmod(0o755)
    return str(path), log


def test_train_then_eval_into_the_summary_keeping_eval_exit_code(tmp_path: Path) -> None:
    labtax, log = stand_in(tmp_path, eval_code=1)
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    summary.write_text("")
    outputs.write_text("")
    out = tmp_path / "train"
    proc = run([str(HOOKS / "ci-train.sh")], cwd=tmp_path, env={
        "LABTAX": labtax, "LABTAX_DATA": str(tmp_path / "data"), "LABTAX_MODEL": "/models/base",
        "LABTAX_OUTPUT": str(out), "LABTAX_TRAIN_ARGS": "--max-steps 5",
        "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(outputs),
    })
    assert proc.returncode == 1, proc.stderr  # a regression fails the job ...
    chosen = str(out / "skills" / "checkpoints" / "samples_8")
    assert "| knowledge/x | 2.0 | 2.5 |" in summary.read_text()  # ... after the table is written
    assert (out / "eval.md").read_text() == proc.stdout.split(f"chosen checkpoint: {chosen}\n")[1]
    assert f"checkpoint={chosen}" in outputs.read_text() and "eval-exit-code=1" in outputs.read_text()
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls[0] == ["train", "--data", str(tmp_path / "data"), "--output", str(out), "--model", "/models/base",
                        "--max-steps", "5"]
    assert calls[1] == ["eval", "--base", "/models/base", "--candidate", chosen,
                        "--data", str(tmp_path / "data"), "--format", "markdown"]


def test_unset_model_and_phase_leave_them_to_labtax_yaml(tmp_path: Path) -> None:
    """The train workflow's inputs default to empty: no --model/--phase then, so `labtax train` takes
    them from the `train:` section of .labtax.yaml; eval compares against the model train started from."""
    labtax, log = stand_in(tmp_path, eval_code=0)
    out = tmp_path / "o"
    proc = run([str(HOOKS / "ci-train.sh")], cwd=tmp_path, env={
        "LABTAX": labtax, "LABTAX_DATA": "d", "LABTAX_MODEL": "", "LABTAX_PHASE": "", "LABTAX_OUTPUT": str(out)})
    assert proc.returncode == 0, proc.stderr
    train, evaluated = (json.loads(line) for line in log.read_text().splitlines())
    assert train == ["train", "--data", "d", "--output", str(out)]
    assert evaluated[:5] == ["eval", "--base", "model-from-labtax-yaml", "--candidate",
                             str(out / "skills" / "checkpoints" / "samples_8")]
    # A phase the caller sets still wins (and the chosen checkpoint follows the phases trained).
    log.unlink()
    proc = run([str(HOOKS / "ci-train.sh")], cwd=tmp_path, env={
        "LABTAX": labtax, "LABTAX_DATA": "d", "LABTAX_PHASE": "knowledge", "LABTAX_OUTPUT": str(tmp_path / "k")})
    assert proc.returncode == 0, proc.stderr
    train, evaluated = (json.loads(line) for line in log.read_text().splitlines())
    assert train[-2:] == ["--phase", "knowledge"]
    assert evaluated[4] == str(tmp_path / "k" / "knowledge" / "checkpoints" / "samples_8")


def test_knowledge_only_evaluates_phase_one(tmp_path: Path) -> None:
    labtax, log = stand_in(tmp_path, eval_code=0)
    proc = run([str(HOOKS / "ci-train.sh")], cwd=tmp_path, env={
        "LABTAX": labtax, "LABTAX_DATA": "d", "LABTAX_MODEL": "tiny", "LABTAX_OUTPUT": str(tmp_path / "o"),
        "LABTAX_PHASE": "knowledge", "LABTAX_EVAL_BASE": "embedded",
    })
    assert proc.returncode == 0, proc.stderr
    evaluated = json.loads(log.read_text().splitlines()[1])
    assert evaluated[:5] == ["eval", "--base", "embedded", "--candidate",
                             str(tmp_path / "o" / "knowledge" / "checkpoints" / "samples_8")]


def test_publish_copies_checkpoints_without_the_resume_state(tmp_path: Path) -> None:
    labtax, _ = stand_in(tmp_path, eval_code=0)
    out = tmp_path / "train"
    run([labtax, "train", "--output", str(out)], cwd=tmp_path)
    dest = tmp_path / "models"
    proc = run([str(HOOKS / "ci-publish.sh")], cwd=tmp_path, env={
        "LABTAX_CHECKPOINTS": str(out), "LABTAX_DESTINATION": str(dest), "GITHUB_SHA": "abc123",
    })
    assert proc.returncode == 0, proc.stderr
    published = dest / "abc123"
    assert (published / "skills/checkpoints/samples_8/model.safetensors").read_text() == "weights"
    assert (published / "knowledge/result.json").is_file()
    assert not (published / "skills/state").exists()


def test_publish_without_destination_does_nothing(tmp_path: Path) -> None:
    proc = run([str(HOOKS / "ci-publish.sh")], cwd=tmp_path, env={"LABTAX_CHECKPOINTS": str(tmp_path)})
    assert proc.returncode == 0 and "no destination" in proc.stdout


def test_loss_curves_reach_the_summary_and_the_card_is_left_to_labtax_eval(tmp_path: Path) -> None:
    from labtax.train.reporting import loss_markdown

    labtax, _ = stand_in(tmp_path, eval_code=0)
    out = tmp_path / "train"
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"event": "step", "step": s, "loss": 3.0 - s / 10}) + "\n"
                               for s in range(1, 6)))
    for phase in ("knowledge", "skills"):  # what labtax train leaves (the stand-in writes the rest)
        (out / phase).mkdir(parents=True)
        (out / phase / "loss.md").write_text(loss_markdown(metrics, f"labtax train: {phase}") or "")
    card = out / "skills" / "checkpoints" / "samples_8" / "README.md"
    card.parent.mkdir(parents=True)
    card.write_text("# skills checkpoint\n")
    summary = tmp_path / "summary.md"
    summary.write_text("")
    proc = run([str(HOOKS / "ci-train.sh")], cwd=tmp_path, env={
        "LABTAX": labtax, "LABTAX_DATA": "d", "LABTAX_MODEL": "tiny", "LABTAX_OUTPUT": str(out),
        "GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == 0, proc.stderr
    text = summary.read_text()
    assert text.index("### labtax train: knowledge") < text.index("### labtax train: skills") < text.index("## labtax eval")
    assert "```mermaid\nxychart-beta" in text and "line [2.9000, 2.8000, 2.7000, 2.6000, 2.5000]" in text
    assert f"`{out / 'skills'}/loss.png` in the checkpoints artifact" in text
    # labtax eval records its results in the card itself (tests/train/test_model_card.py): the hook must
    # not append a second copy.
    assert card.read_text() == "# skills checkpoint\n"
