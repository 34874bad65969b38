"""`labtax chat`: one-shot messages (tiny, embedded-small), stdin, the system turn, history, /reset, /system."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from use_fixtures import SYSTEM

from labtax.cli import cli
from labtax.use.chat import ChatOptions, command, open_session


@pytest.fixture(scope="module")
def tiny_session():  # type: ignore[no-untyped-def]
    import torch

    before = torch.get_num_threads()
    yield open_session(ChatOptions(model="tiny", max_new_tokens=6, threads=1))
    torch.set_num_threads(before)


def test_embedded_small_answers_a_one_shot_message() -> None:
    result = CliRunner().invoke(cli, ["chat", "embedded-small", "--message", "What is the capital of France?",
                                      "--max-new-tokens", "24", "-q"])
    assert result.exit_code == 0, result.output
    assert "Paris" in result.output


def test_tiny_answers_a_message_from_stdin_and_streams_it(tiny_session) -> None:  # type: ignore[no-untyped-def]
    chunks: list[str] = []
    answer = tiny_session.reply("Where does the river flow?", chunks.append)
    assert answer == "".join(chunks).strip()
    assert [m["role"] for m in tiny_session.history] == ["user", "assistant"]
    result = CliRunner().invoke(cli, ["chat", "tiny", "--max-new-tokens", "4", "-q"], input="Where does it flow?\n")
    assert result.exit_code == 0, result.output


def test_history_reset_and_system(tiny_session) -> None:  # type: ignore[no-untyped-def]
    tiny_session.reset()
    tiny_session.reply("first question")
    tiny_session.reply("second question")
    assert [m["content"] for m in tiny_session.history if m["role"] == "user"] == ["first question", "second question"]
    assert command(tiny_session, "/system You answer in French.") == "(system turn set)"
    assert tiny_session.messages()[0] == {"role": "system", "content": "You answer in French."}
    assert "You answer in French." in (command(tiny_session, "/system") or "")
    assert command(tiny_session, "/reset") == "(conversation reset)"
    assert tiny_session.history == [] and tiny_session.messages()[0]["role"] == "system"
    assert command(tiny_session, "hello") is None
    with pytest.raises(EOFError):
        command(tiny_session, "/exit")


def test_a_checkpoint_chats_with_the_system_turn_it_was_trained_with(trained_tiny: Path) -> None:
    assert json.loads((trained_tiny / "labtax_data.json").read_text())["system_prompt"] == SYSTEM
    session = open_session(ChatOptions(model=str(trained_tiny), max_new_tokens=3, threads=1))
    assert session.system.text == SYSTEM and "labtax_data.json" in session.system.source
    assert session.messages() == [{"role": "system", "content": SYSTEM}]
    explicit = open_session(ChatOptions(model=str(trained_tiny), system="", max_new_tokens=3, threads=1))
    assert explicit.system.text is None  # --system '' sends none
    result = CliRunner().invoke(cli, ["chat", str(trained_tiny), "-m", "hi", "-m", "again", "--max-new-tokens", "3"])
    assert result.exit_code == 0, result.output
    assert "system turn: the training data (labtax_data.json)" in result.output


def test_a_folder_that_is_no_model_is_one_line_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["chat", str(tmp_path), "-m", "hi"])
    assert result.exit_code == 2
    assert result.output.startswith("labtax: error: ") and "Traceback" not in result.output


def test_the_dtype_choice_is_cached_under_labtax_cache_not_in_a_read_only_model_folder(
        trained_tiny: Path, tmp_path: Path) -> None:
    import shutil
    import stat

    from labtax.use.chat import choice_cache

    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        shutil.copytree(trained_tiny, folder)
    for path in [*folders[0].rglob("*"), folders[0]]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = sorted(p.name for p in folders[0].iterdir())
    cache = choice_cache(str(folders[0]))
    try:
        open_session(ChatOptions(model=str(folders[0]), max_new_tokens=2, threads=1))
        # Nothing written into the folder (root could have: the check is the listing, not a refusal).
        assert sorted(p.name for p in folders[0].iterdir()) == before
        from labtax.models import cache_dir

        assert cache.parent == cache_dir() / "choices" and cache.is_file()
        assert any(k.startswith("dtype2-") for k in json.loads(cache.read_text()))  # v2: with bf16-fp32
        assert choice_cache(str(folders[1])) == cache  # keyed by content: the same weights elsewhere
    finally:
        cache.unlink(missing_ok=True)
        for path in [folders[0], *folders[0].rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
