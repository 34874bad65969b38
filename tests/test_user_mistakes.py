"""A user's mistakes get one line and the right exit code: a model folder transformers cannot load,
and a teacher that refuses connections (said at once, nothing counted as sent)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "sdg"))
sys.path.insert(0, str(Path(__file__).parent / "eval"))
sys.path.insert(0, str(Path(__file__).parent / "train"))

from labtax.cli import cli
from labtax.errors import EXIT_TEACHER


@pytest.mark.parametrize("config", [None, {}])
def test_eval_with_a_model_folder_it_cannot_load_is_one_line_exit_2(tmp_path: Path, config: object) -> None:
    from eval_fixtures import make_eval_data

    data = make_eval_data(tmp_path / "data")
    model = tmp_path / "checkpoint"
    model.mkdir()
    if config is None:  # a config but no weights, no tokenizer
        from labtax.models import TINY_CONFIG

        (model / "config.json").write_text(json.dumps({"model_type": "llama", **TINY_CONFIG}))
    else:
        (model / "config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(cli, ["eval", "--base", "tiny", "--candidate", str(model), "--data", str(data)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert "Traceback" not in result.output and len(lines) <= 2, result.output
    assert any(line.startswith("labtax: error: model") and "cannot be loaded" in line for line in lines)


def _checkpoint(folder: Path, fault: str) -> Path:
    """A real tiny checkpoint (save_pretrained), then broken the way `fault` says."""
    from labtax.models import TINY, build_tiny_model, load_tokenizer

    build_tiny_model().save_pretrained(folder)
    load_tokenizer(TINY).save_pretrained(folder)
    weights = folder / "model.safetensors"
    if fault == "truncated":  # a copy that stopped half-way
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif fault == "pickle":  # the same weights as a pickle, the only weights file
        import torch
        from safetensors.torch import load_file

        torch.save(load_file(weights), folder / "pytorch_model.bin")
        weights.unlink()
    elif fault == "template":  # reaches for a class attribute: the jinja sandbox refuses it
        (folder / "chat_template.jinja").write_text("{{ messages.__class__.__mro__ }}")
    return folder


@pytest.mark.parametrize(("fault", "said"), [
    ("truncated", "model.safetensors: Error while deserializing header"),
    ("pickle", "no *.safetensors weights"),
    ("template", "the jinja sandbox refused its chat template"),
])
def test_eval_of_a_candidate_that_cannot_be_loaded_is_exit_2_not_gate_failed(tmp_path: Path, fault: str,
                                                                            said: str) -> None:
    from eval_fixtures import make_eval_data

    data = make_eval_data(tmp_path / "data")
    candidate = _checkpoint(tmp_path / "checkpoint", fault)
    result = CliRunner().invoke(cli, ["eval", "--base", "tiny", "--candidate", str(candidate), "--data", str(data)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("labtax: error:")]
    assert len(errors) == 1 and said in errors[0] and "Traceback" not in result.output, result.output


def test_train_never_unpickles_a_model_folder(tmp_path: Path) -> None:
    from train_fixtures import make_data_dir

    candidate = _checkpoint(tmp_path / "checkpoint", "pickle")
    result = CliRunner().invoke(cli, ["train", "--data", str(make_data_dir(tmp_path / "data")), "--model", str(candidate),
                                      "--output", str(tmp_path / "out"), "--max-steps", "1"])
    assert result.exit_code == 2 and "pickle files, which labtax never loads" in result.output, result.output


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_teacher_refusing_connections_is_said_at_once_and_nothing_counts_as_sent(git_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from lab_taxonomy import add_skill, manifest

    add_skill(git_repo, "compositional_skills/writing/haiku")
    git_repo.commit("taxonomy")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [
        "diff-generate", "--taxonomy", str(git_repo.root), "--base", "empty", "--head", "HEAD", "--output", str(out),
        "--teacher", "openai", "--endpoint", f"http://127.0.0.1:{_closed_port()}/v1", "--model", "m",
        "--retries", "1", "--samples-per-leaf", "2",
    ])
    assert result.exit_code == EXIT_TEACHER, result.output
    said = [line for line in result.output.splitlines() if "is unreachable" in line]
    assert len(said) == 1 and said[0].startswith("labtax: teacher endpoint http://127.0.0.1:"), result.output
    assert result.output.index("is unreachable") < result.output.index("failed ")
    assert "(0 requests sent" in result.output
    assert manifest(out)["run"]["requests_sent"] == 0


def test_a_model_folder_never_runs_its_own_code(tmp_path: Path) -> None:
    # A checkpoint that ships modeling/tokenizer code and points transformers' auto_map at it: labtax
    # loads with trust_remote_code=False, so the code never runs (it would write the marker).
    from labtax.models import load_model, load_tokenizer

    folder = _checkpoint(tmp_path / "checkpoint", "none")
    marker = tmp_path / "ran.txt"
    plant = f"open({str(marker)!r}, 'a').write('ran\\n')\n"
    for module in ("modeling_evil.py", "configuration_evil.py", "tokenization_evil.py"):
        (folder / module).write_text(plant)
    for name, auto in (("config.json", {"AutoConfig": "configuration_evil.EvilConfig",
                                        "AutoModelForCausalLM": "modeling_evil.EvilModel"}),
                       ("tokenizer_config.json", {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]})):
        data = json.loads((folder / name).read_text())
        (folder / name).write_text(json.dumps({**data, "auto_map": auto}))
    load_tokenizer(str(folder))
    load_model(str(folder))
    assert not marker.exists()
