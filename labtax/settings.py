"""One configuration file: the `generate:` and `train:` sections of `.labtax.yaml`.

    generate:                      # labtax generate and labtax diff-generate
      teacher: openai
      endpoints: [http://vllm-0:8000/v1, http://vllm-1:8000/v1]
      api_key_env: LABTAX_TEACHER_API_KEY
      samples_per_leaf: 50
    train:                         # labtax train
      model: embedded
      schedule: cosine
      report_to: tensorboard

A key is an option of the command, spelled as on the command line without the dashes (`-` or `_`
both work). The values become the options' defaults through click's `default_map`, so a flag given
on the command line always wins, and `labtax config` can tell for every setting whether it came
from a flag, `.labtax.yaml` or labtax's default. One precedence for every setting: flag > the
command's own config file (`train --config`) > `.labtax.yaml` > labtax's default; `train` tells the
file's values from flags with `set_in_config_file` to rank its `--config` between them.

The file is the one at the top of the git work tree holding the current directory (else the
current directory): where the commands, the hooks and the workflows run. It is parsed once per
process, by labtax.taxonomy.config.read_config_file, which also reads its `validate:` section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from labtax.errors import ConfigError
from labtax.taxonomy.config import read_config_file
from labtax.taxonomy.discover import git_toplevel

CONFIG_FILE = ".labtax.yaml"  # = labtax.taxonomy.config.CONFIG_FILE (a test keeps them equal)

# section of .labtax.yaml -> the commands it sets defaults for
SECTIONS: dict[str, tuple[str, ...]] = {"generate": ("generate", "diff-generate"), "train": ("train",)}
_NOT_SETTINGS = {"help", "quiet", "verbose"}
_ALIASES = {"endpoints": "endpoint"}  # a list reads better plural; the flag is repeated singular


def config_root(cwd: Path | None = None) -> Path:
    cwd = cwd or Path.cwd()
    return git_toplevel(cwd) or cwd


def read_sections(root: Path) -> tuple[dict[str, dict[str, Any]], Path | None]:
    """The `generate:` and `train:` mappings of `root/.labtax.yaml` (empty when absent)."""
    found = read_config_file(root)
    if found is None:
        return {}, None
    raw, path = found
    if raw is None:
        return {}, path
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings")
    sections: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        value = raw.get(name)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: '{name}' must be a mapping of option: value")
        keys = {str(k).replace("-", "_"): v for k, v in value.items()}
        sections[name] = {_ALIASES.get(k, k): v for k, v in keys.items()}
    return sections, path


def setting_names(command: click.Command) -> dict[str, click.Parameter]:
    """{key as written in .labtax.yaml: option}: the long flag without its dashes (`--samples-per-leaf`
    -> samples_per_leaf, `--taxonomy` -> taxonomy), as users know the options by their flags."""
    names: dict[str, click.Parameter] = {}
    for p in command.params:
        if isinstance(p, click.Option) and p.name and p.name not in _NOT_SETTINGS:
            longs = [o for o in p.opts if o.startswith("--")] or [p.name]
            names[longs[0].lstrip("-").split("/")[0].replace("-", "_")] = p
    return names


def default_map(group: click.Group, root: Path) -> dict[str, dict[str, Any]]:
    """click's default_map for the commands the file's sections cover; unknown keys are an error."""
    sections, path = read_sections(root)
    out: dict[str, dict[str, Any]] = {}
    for section, values in sections.items():
        commands = [group.commands[c] for c in SECTIONS[section] if c in group.commands]
        known = set().union(*(setting_names(c) for c in commands)) if commands else set()
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown {section} setting(s): {', '.join(unknown)}",
                              hint=f"known: {', '.join(sorted(known))}")
        for command in commands:
            names = setting_names(command)
            out[command.name or ""] = {str(names[k].name): v for k, v in values.items() if k in names}
    return out


def set_in_config_file(ctx: click.Context) -> frozenset[str]:
    """The parameters of the running command whose value came from `.labtax.yaml` (click's
    default_map), not from a flag: a command whose own config file ranks between the two (`train
    --config`) needs to tell them apart."""
    return frozenset(name for name in ctx.params
                     if ctx.get_parameter_source(name) is click.core.ParameterSource.DEFAULT_MAP)


def effective(group: click.Group, parent: click.Context, command_name: str) -> list[tuple[str, Any, str]]:
    """(setting, value, source) for one command as it would run now with no flags: the value from
    .labtax.yaml or labtax's default, and which of the two it is."""
    command = group.commands[command_name]
    ctx = command.make_context(command_name, [], parent=parent, resilient_parsing=True)
    rows = []
    for key, param in setting_names(command).items():
        source = ctx.get_parameter_source(str(param.name))
        where = CONFIG_FILE if source is click.core.ParameterSource.DEFAULT_MAP else "default"
        rows.append((key, ctx.params.get(str(param.name)), where))
    return rows
