"""One configuration file: `.labtax.yaml`'s generate: and train: sections become the commands'
defaults, flags override them, and `labtax config` says where each setting came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from labtax.cli import cli

SKILL = (Path(__file__).parent / "taxonomy/examples/good/compositional_skills/writing/poetry/haiku/qna.yaml").read_text()


def taxonomy(root: Path, config: str) -> Path:
    leaf = root / "compositional_skills/writing/haiku/qna.yaml"
    leaf.parent.mkdir(parents=True)
    leaf.write_text(SKILL)
    (leaf.parent / "attribution.txt").write_text("Title: haiku\n")
    (root / ".labtax.yaml").write_text(config)
    return root


def test_generate_reads_the_file_and_flags_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               openai_server) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LABTAX_CACHE", str(tmp_path / "cache"))
    root = taxonomy(tmp_path / "tax", "validate:\n  strict: false\ngenerate:\n  teacher: openai\n"
                                      f"  endpoints: [{openai_server.base_url}]\n  samples-per-leaf: 3\n"
                                      "  seed: 5\n")
    monkeypatch.chdir(root)
    runner = CliRunner()
    first = runner.invoke(cli, ["generate", "--output", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    rows = [json.loads(line) for line in (tmp_path / "a/compositional_skills/writing/haiku.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and {r["metadata"]["seed"] for r in rows} == {5}
    assert {r["metadata"]["teacher"] for r in rows} == {"openai:test-model"}
    second = runner.invoke(cli, ["generate", "--output", str(tmp_path / "b"), "--samples-per-leaf", "2"])
    assert second.exit_code == 0, second.output
    assert len((tmp_path / "b/compositional_skills/writing/haiku.jsonl").read_text().splitlines()) == 2

    shown = runner.invoke(cli, ["config", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    settings = {s["name"]: (s["value"], s["source"]) for s in json.loads(shown.output)["settings"]}
    assert settings["generate.teacher"] == ("openai", ".labtax.yaml")
    assert settings["diff-generate.samples_per_leaf"] == (3, ".labtax.yaml")
    assert settings["generate.endpoint"] == ([openai_server.base_url], ".labtax.yaml")
    assert settings["generate.max_tokens"][1] == "default"
    assert settings["validate.strict"] == (False, str(root / ".labtax.yaml"))
    text = runner.invoke(cli, ["config"]).output
    assert "generate.teacher" in text and "openai  (.labtax.yaml)" in text


def test_train_section_and_bad_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = taxonomy(tmp_path / "tax", "train:\n  model: tiny\n  report-to: none\n  save-dtype: bf16\n")
    monkeypatch.chdir(root)
    shown = json.loads(CliRunner().invoke(cli, ["config", "--format", "json"]).output)["settings"]
    got = {s["name"]: (s["value"], s["source"]) for s in shown}
    assert got["train.model"] == ("tiny", ".labtax.yaml") and got["train.save_dtype"] == ("bf16", ".labtax.yaml")
    assert got["train.phase"] == ("all", "default")
    (root / ".labtax.yaml").write_text("train:\n  modle: tiny\n")
    bad = CliRunner().invoke(cli, ["train", "--data", "d", "--output", "o"])
    assert bad.exit_code == 2 and "unknown train setting(s): modle" in bad.output
    (root / ".labtax.yaml").write_text("generate:\n  samples_per_leaf: lots\n")
    wrong = CliRunner().invoke(cli, ["generate"])
    assert wrong.exit_code == 2 and "lots" in wrong.output


def test_the_commented_sections_labtax_init_writes_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import resources

    template = resources.files("labtax.scaffold").joinpath("templates", "labtax.yaml").read_text()
    lines, keep = [], False
    for line in template.splitlines():
        if line.startswith(("# generate:", "# train:")):
            keep = True
        elif not line.startswith("#   "):
            keep = False
        if keep:
            lines.append(line.replace("# ", "", 1))
    assert any(line.startswith("generate:") for line in lines) and any(line.startswith("train:") for line in lines)
    root = taxonomy(tmp_path / "tax", "\n".join(lines) + "\n")
    monkeypatch.chdir(root)
    shown = CliRunner().invoke(cli, ["config", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    got = {s["name"]: s for s in json.loads(shown.output)["settings"]}
    assert got["generate.samples_per_leaf"]["value"] == 150 and got["train.select"]["value"] == "loss"
    assert got["train.model"]["source"] == ".labtax.yaml"
    # The template as written (every line commented out) sets nothing: all defaults are labtax's ...
    (root / ".labtax.yaml").write_text(template)
    shown = CliRunner().invoke(cli, ["config", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    defaults = {s["name"]: s for s in json.loads(shown.output)["settings"]}
    assert {s["source"] for s in defaults.values()} == {"default"}
    # ... and each value it shows, uncommented, is that default (`train: model:` said `embedded`).
    uncommented = {name: s["value"] for name, s in got.items() if s["source"] == ".labtax.yaml"}
    assert len(uncommented) > 10
    assert uncommented == {name: defaults[name]["value"] for name in uncommented}


def test_the_one_configuration_file_is_the_validator_s() -> None:
    from labtax import settings
    from labtax.taxonomy.config import CONFIG_FILE

    assert settings.CONFIG_FILE == CONFIG_FILE


def test_the_file_is_parsed_once_for_a_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `labtax validate` needs the file twice (the commands' defaults, then validate's policy): one parse.
    from labtax.taxonomy.config import _parsed_config

    root = taxonomy(tmp_path / "tax", "validate:\n  strict: true\ntrain:\n  model: tiny\n")
    monkeypatch.chdir(root)
    before = _parsed_config.cache_info()
    result = CliRunner().invoke(cli, ["validate"])
    assert result.exit_code == 0, result.output
    after = _parsed_config.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)
    # an edited file is read again (its size and mtime are in the key)
    (root / ".labtax.yaml").write_text("validate:\n  strict: false\n")
    assert CliRunner().invoke(cli, ["validate"]).exit_code == 0
    assert _parsed_config.cache_info().misses == after.misses + 1
