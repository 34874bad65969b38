"""Per-taxonomy settings: .labtax.yaml at the root or [tool.labtax] in pyproject.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from labtax.errors import ConfigError
from labtax.taxonomy.config import Config, load_config


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert config == Config() and config.max_file_bytes == 1024 * 1024 and not config.strict


def test_yaml_file_validate_section(tmp_path: Path) -> None:
    (tmp_path / ".labtax.yaml").write_text("validate:\n  strict: true\n  disable: [word-limit, 'document-*']\n"
                                           "  max_file_bytes: 2048\nsdg:\n  teacher: x\n")
    config = load_config(tmp_path)
    assert config.strict and config.max_file_bytes == 2048
    assert config.disabled("word-limit") and config.disabled("document-commit") and not config.disabled("attribution")


def test_yaml_file_top_level_form(tmp_path: Path) -> None:
    (tmp_path / ".labtax.yaml").write_text("strict: true\ndisable: word-limit\nother_stage: 1\n")
    config = load_config(tmp_path)
    assert config.strict and config.disable == ("word-limit",)


def test_pyproject_tool_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.labtax.validate]\nstrict = true\ndisable = ["unknown-key"]\n')
    config = load_config(tmp_path)
    assert config.strict and config.disable == ("unknown-key",)


def test_yaml_file_wins_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.labtax]\nstrict = true\n")
    (tmp_path / ".labtax.yaml").write_text("strict: false\n")
    assert not load_config(tmp_path).strict


@pytest.mark.parametrize(
    "text",
    ["validate:\n  strict: maybe\n", "validate:\n  disable: [no-such-rule]\n", "validate:\n  colour: red\n",
     "validate:\n  max_file_bytes: -1\n", "- a\n", "validate: [1]\n", "a: [\n"],
)
def test_bad_config_is_a_config_error(tmp_path: Path, text: str) -> None:
    (tmp_path / ".labtax.yaml").write_text(text)
    with pytest.raises(ConfigError):
        load_config(tmp_path)


def test_with_strict_only_turns_strictness_on() -> None:
    assert Config().with_strict(True).strict
    assert Config(strict=True).with_strict(False).strict
