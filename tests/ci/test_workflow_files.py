"""Every workflow and the composite action: actionlint-clean and shaped as the issue requires."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cihelpers import ROOT, VENV_BIN

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
EXAMPLES = sorted((ROOT / "examples" / "workflows").glob("*.yml"))


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def on(workflow: dict[Any, Any]) -> dict[str, Any]:
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
    trigger = workflow.get("on", workflow.get(True))
    assert isinstance(trigger, dict)
    return trigger


def steps_using(job: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith(prefix)]


def test_the_expected_files_exist() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"ci.yml", "validate.yml", "generate.yml", "train.yml"} <= names
    assert {p.name for p in EXAMPLES} == {"labtax-validate.yml", "labtax-generate.yml"}


@pytest.mark.parametrize("path", WORKFLOWS + EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_actionlint_passes(path: Path) -> None:
    out = subprocess.run(
        [str(VENV_BIN / "actionlint"), "-no-color", str(path)], check=False, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    # The lint is only worth something if it fails: an unknown context and a bad runs-on type.
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: 3\n    steps:\n      - run: echo ${{ nope.x }}\n")
    out = subprocess.run([str(VENV_BIN / "actionlint"), str(bad)], check=False, capture_output=True, text=True)
    assert out.returncode == 1 and "nope" in out.stdout


def test_ci_runs_lint_types_and_tests_with_the_cpu_torch() -> None:
    ci = load(ROOT / ".github/workflows/ci.yml")
    assert {"push", "pull_request"} <= set(on(ci))
    text = (ROOT / ".github/workflows/ci.yml").read_text()
    for needle in ("make test", "ruff check", "mypy labtax", "actionlint", "torch==2.13.0",
                   "https://download.pytorch.org/whl/cpu"):
        assert needle in text, needle


def reusable(name: str) -> dict[str, Any]:
    workflow = load(ROOT / ".github/workflows" / name)
    assert set(on(workflow)) == {"workflow_call"}, name
    return workflow


def test_validate_is_read_only_without_secrets_and_diffs_the_pr_base() -> None:
    workflow = reusable("validate.yml")
    assert workflow["permissions"] == {"contents": "read"}
    assert "secrets" not in (on(workflow)["workflow_call"] or {})
    text = (ROOT / ".github/workflows/validate.yml").read_text()
    assert "secrets." not in text
    job = workflow["jobs"]["validate"]
    assert job["permissions"] == {"contents": "read"}
    checkout = steps_using(job, "actions/checkout")[0]
    assert checkout["with"]["fetch-depth"] == 0
    run = next(s for s in job["steps"] if s.get("uses") == "./.labtax")
    assert run["with"] == {**run["with"], "command": "validate", "base": "auto", "format": "github"}
    # the action maps the pull request's base sha onto the range script
    action = load(ROOT / "action.yml")
    env = next(s for s in action["runs"]["steps"] if s.get("id") == "range")["env"]
    assert env["PR_BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"


def test_generate_diffs_before_after_and_uploads_sets_and_manifest() -> None:
    workflow = reusable("generate.yml")
    call = on(workflow)["workflow_call"]
    assert "teacher-api-key" in call["secrets"]
    assert {"endpoint", "teacher", "samples-per-leaf"} <= set(call["inputs"])
    job = workflow["jobs"]["generate"]
    assert steps_using(job, "actions/checkout")[0]["with"]["fetch-depth"] == 0
    run = next(s for s in job["steps"] if s.get("uses") == "./.labtax")
    assert run["with"]["command"] == "diff-generate" and run["with"]["base"] == "auto"
    # The key goes in as an action input, which only the action's labtax step turns into env
    # (issue 12: a step-level env would reach every sub-step of the composite action, pip included).
    assert run["with"]["teacher-api-key"] == "${{ secrets.teacher-api-key }}" and "env" not in run
    assert "--endpoint" in run["with"]["args"] and "--api-key-env LABTAX_TEACHER_API_KEY" in run["with"]["args"]
    upload = steps_using(job, "actions/upload-artifact")[0]
    # Every set a manifest can list (issue 22: validation.jsonl and the two-step sets were left behind,
    # so the train job selected checkpoints on the gate's test items).
    from labtax.data.names import MANIFEST, SET_FILES, STEP_FILES, VALIDATION

    uploaded = {Path(p.strip()).name for p in upload["with"]["path"].splitlines() if p.strip()}
    assert {*SET_FILES, VALIDATION, *STEP_FILES, MANIFEST} <= uploaded
    assert steps_using(job, "actions/cache"), "the leaf store must survive between runs"


def test_the_teacher_key_reaches_only_the_step_that_runs_labtax() -> None:
    action = load(ROOT / "action.yml")
    holders = [s.get("id") or s.get("name") for s in action["runs"]["steps"]
               if "teacher-api-key" in yaml.safe_dump(s)]
    assert holders == ["run"]
    run = next(s for s in action["runs"]["steps"] if s.get("id") == "run")
    assert run["env"]["LABTAX_TEACHER_API_KEY"] == "${{ inputs.teacher-api-key }}"
    for path in WORKFLOWS + EXAMPLES + [ROOT / "action.yml"]:
        workflow = load(path)
        assert "teacher-api-key" not in yaml.safe_dump(workflow.get("env") or {}), path
        for job in (workflow.get("jobs") or {}).values():
            assert "secrets." not in yaml.safe_dump(job.get("env") or {}), path
            for step in job.get("steps") or []:
                assert "secrets." not in yaml.safe_dump(step.get("env") or {}), (path, step.get("name"))


def test_train_is_gpu_guarded_bounded_and_serialised() -> None:
    workflow = reusable("train.yml")
    inputs = on(workflow)["workflow_call"]["inputs"]
    assert yaml.safe_load(inputs["runs-on"]["default"]) == ["self-hosted", "gpu"]
    job = workflow["jobs"]["train"]
    assert job["runs-on"] == "${{ fromJSON(inputs.runs-on) }}"
    assert "timeout-minutes" in job and job["concurrency"]["cancel-in-progress"] is False
    guard = job["if"]
    # never a fork's pull request: pull requests only when merged and from this repository
    assert "github.event.pull_request.head.repo.full_name == github.repository" in guard
    assert "github.event.pull_request.merged == true" in guard
    assert steps_using(job, "actions/download-artifact")
    text = (ROOT / ".github/workflows/train.yml").read_text()
    assert "hooks/ci-train.sh" in text and "hooks/ci-publish.sh" in text
    # model and phase default to empty and the train step runs in the taxonomy's checkout, so its
    # .labtax.yaml `train:` section applies (ci-train.sh passes only what the caller set).
    assert inputs["model"]["default"] == inputs["phase"]["default"] == "" and not inputs["model"].get("required")
    taxonomy = next(s for s in steps_using(job, "actions/checkout") if s["with"]["path"] == "taxonomy")
    assert "repository" not in taxonomy["with"]  # the caller's own repository
    train = next(s for s in job["steps"] if s.get("id") == "train")
    assert train["working-directory"] == "taxonomy" and train["run"] == "../.labtax/hooks/ci-train.sh"
    assert "ci-train.sh" in text and "GITHUB_STEP_SUMMARY" in (ROOT / "hooks/ci-train.sh").read_text()


def test_composite_action_structure() -> None:
    action = load(ROOT / "action.yml")
    assert {"name", "description", "inputs", "runs"} <= set(action)
    assert {"command", "base", "format", "version"} <= set(action["inputs"])
    for name, spec in action["inputs"].items():
        assert "description" in spec, name
    runs = action["runs"]
    assert runs["using"] == "composite"
    for step in runs["steps"]:
        assert ("uses" in step) != ("run" in step), step
        if "run" in step:
            assert step["shell"] == "bash"
            # every shell step is a script of hooks/, which the tests run on their own
            script = step["run"].strip("'\"").replace("$GITHUB_ACTION_PATH/", "")
            assert (ROOT / script).is_file() and (ROOT / script).stat().st_mode & 0o111, script
            # inputs reach scripts through env, never pasted into the script text
            assert "${{" not in step["run"]
    for name, spec in action["outputs"].items():
        assert "value" in spec, name


def test_callers_pin_the_reusable_workflows() -> None:
    validate = load(ROOT / "examples/workflows/labtax-validate.yml")
    assert set(on(validate)) == {"pull_request"} and validate["permissions"] == {"contents": "read"}
    assert validate["jobs"]["validate"]["uses"].startswith("labtax/labtax/.github/workflows/validate.yml@")
    generate = load(ROOT / "examples/workflows/labtax-generate.yml")
    assert on(generate)["push"]["branches"] == ["main"]
    jobs = generate["jobs"]
    assert jobs["generate"]["uses"].split("@")[0].endswith("/generate.yml")
    assert jobs["train"]["needs"] == "generate" and "vars.LABTAX_TRAIN" in jobs["train"]["if"]


SHELL_SCRIPTS = [
    *sorted((ROOT / "hooks").glob("*.sh")),
    ROOT / "labtax/scaffold/hooks/labtax-hook.sh",
    ROOT / "scripts/demo.sh",
]


def test_shell_scripts_pass_shellcheck() -> None:
    shellcheck = VENV_BIN / "shellcheck"
    out = subprocess.run([str(shellcheck), "-x", *map(str, SHELL_SCRIPTS)], check=False,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_actionlint_also_shellchecks_inline_run_blocks(tmp_path: Path) -> None:
    # with shellcheck on PATH, actionlint checks the `run:` scripts of the workflows too ...
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin"}
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: rm -rf $DIR/x\n")
    out = subprocess.run([str(VENV_BIN / "actionlint"), str(bad)], check=False, capture_output=True,
                         text=True, env=env)
    assert out.returncode == 1 and "SC2086" in out.stdout
    # ... and ours pass it
    files = [str(p) for p in WORKFLOWS + EXAMPLES]
    out = subprocess.run([str(VENV_BIN / "actionlint"), *files], check=False, capture_output=True,
                         text=True, env=env)
    assert out.returncode == 0, out.stdout


def test_validate_uploads_sarif_from_a_separate_job_for_same_repository_prs() -> None:
    workflow = reusable("validate.yml")
    scanning_input = on(workflow)["workflow_call"]["inputs"]["code-scanning"]
    assert scanning_input["default"] == "auto"
    job = workflow["jobs"]["validate"]
    condition = " ".join(job["env"]["CODE_SCANNING"].split())
    for needle in ("inputs.code-scanning == 'true'", "inputs.code-scanning == 'auto'",
                   "github.event.pull_request.head.repo.full_name == github.repository"):
        assert needle in condition, needle
    sarif = next(s for s in job["steps"] if s.get("id") == "sarif")
    assert sarif["uses"] == "./.labtax" and sarif["with"]["format"] == "sarif"
    assert "--output ${{ runner.temp }}/labtax-validate.sarif" in " ".join(sarif["with"]["args"].split())
    assert "env.CODE_SCANNING == 'true'" in sarif["if"] and "!cancelled()" in sarif["if"]
    # The job reading the pull request's files never holds a token that can write.
    assert job["permissions"] == {"contents": "read"}
    upload = workflow["jobs"]["code-scanning"]
    assert upload["needs"] == "validate" and "needs.validate.outputs.sarif == 'true'" in upload["if"]
    assert upload["permissions"]["security-events"] == "write"
    assert set(upload["permissions"].values()) <= {"read", "write"}
    step = steps_using(upload, "github/codeql-action/upload-sarif@")[0]
    ref = step["uses"].split("@")[1]
    assert len(ref) == 40 and all(c in "0123456789abcdef" for c in ref)  # pinned by full SHA
    assert step["with"]["sarif_file"] == "sarif/labtax-validate.sarif"
    assert not any("./.labtax" == s.get("uses") or "checkout" in str(s.get("uses")) for s in upload["steps"])


def test_the_validate_caller_grants_the_upload_job_its_permission() -> None:
    caller = load(ROOT / "examples/workflows/labtax-validate.yml")
    assert caller["permissions"] == {"contents": "read"}
    assert caller["jobs"]["validate"]["permissions"]["security-events"] == "write"


def _all_uses() -> list[tuple[Path, str, str]]:
    """(file, the uses: value, the rest of its line) for every step of every workflow and the action."""
    out = []
    for path in [*WORKFLOWS, *EXAMPLES, ROOT / "action.yml"]:
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip().lstrip("- ")
            if stripped.startswith("uses:"):
                value, _, comment = stripped[len("uses:"):].strip().partition("#")
                out.append((path, value.strip(), comment.strip()))
    return out


def test_every_action_is_pinned_by_a_full_commit_sha_with_its_tag() -> None:
    import re

    remote = [(p, v, c) for p, v, c in _all_uses() if not v.startswith("./") and "/.github/workflows/" not in v]
    assert remote
    for path, value, comment in remote:
        ref = value.rpartition("@")[2]
        assert re.fullmatch(r"[0-9a-f]{40}", ref), (path.name, value)
        assert re.fullmatch(r"v\d+(\.\d+)*", comment), (path.name, value, comment)


def test_the_reusable_workflows_run_the_labtax_commit_the_caller_pinned() -> None:
    seen = 0
    for name in ("validate.yml", "generate.yml", "train.yml"):
        for job in reusable(name)["jobs"].values():
            for step in job.get("steps") or []:
                if step.get("with", {}).get("path") != ".labtax":
                    continue
                seen += 1
                assert step["with"]["ref"] == "${{ job.workflow_sha || inputs.labtax-ref }}", name
                assert step["with"]["repository"] == "${{ job.workflow_repository || inputs.labtax-repository }}", name
    assert seen >= 3


def test_the_generation_cache_is_keyed_by_what_makes_the_data_valid() -> None:
    job = reusable("generate.yml")["jobs"]["generate"]
    cache = steps_using(job, "actions/cache")[0]["with"]
    for part in ("github.ref_name", "job.workflow_sha", "inputs.teacher", "inputs.samples-per-leaf",
                 "inputs.seed", "inputs.max-tokens", "github.sha"):
        assert part in cache["key"], part
    restore = [k for k in cache["restore-keys"].splitlines() if k.strip()]
    assert len(restore) == 1 and "job.workflow_sha" in restore[0] and "inputs.teacher" in restore[0]
    run = next(s for s in job["steps"] if s.get("uses") == "./.labtax")
    assert "--untrusted-store" in run["with"]["args"]
