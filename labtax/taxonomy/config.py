"""labtax's per-taxonomy settings: `.labtax.yaml` at the taxonomy root, or `[tool.labtax]` in its
pyproject.toml (the YAML file wins when both exist).

Validation settings live under a `validate` key (or at the top level for brevity):

    validate:
      strict: true              # warnings become errors
      disable: [word-limit]     # rule ids (fnmatch patterns allowed: "document-*")
      max_file_bytes: 1048576   # larger qna.yaml files are refused

The rules that keep hostile or broken input out of the generation path (`PROTECTED`: syntax,
encoding, types, links and folders leaving the repository) cannot be disabled: a pattern that names
only protected rules is a config error, and a broader pattern (`yaml-*`) leaves them on.
In a pull request, the policy is read from the base commit (`load_config_at`), never from the tree
under review.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from labtax.errors import ConfigError
from labtax.taxonomy.catalog import RULES
from labtax.util.git import run_git

CONFIG_FILE = ".labtax.yaml"
DEFAULT_MAX_FILE_BYTES = 1024 * 1024
DEFAULT_MAX_YAML_NODES = 100_000
_KEYS = {"strict", "disable", "max_file_bytes", "max_yaml_nodes"}
# Without these a leaf could crash generation, or make the repository's own secrets training data.
PROTECTED = frozenset({
    "file-unreadable", "file-not-regular", "symlink-outside", "encoding", "yaml-syntax", "yaml-tag",
    "yaml-key", "yaml-alias-limit", "yaml-empty", "yaml-not-mapping", "version", "knowledge-version",
    "schema-required", "schema-type", "document-pattern", "document-git-dir",
})


@dataclass(frozen=True)
class Config:
    """Validation settings. Immutable: `with_strict()` returns a copy."""

    strict: bool = False
    disable: tuple[str, ...] = ()
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_yaml_nodes: int = DEFAULT_MAX_YAML_NODES
    source: str | None = field(default=None, compare=False)

    def disabled(self, rule: str) -> bool:
        if rule in PROTECTED:
            return False
        return any(fnmatch.fnmatchcase(rule, pattern) for pattern in self.disable)

    def with_strict(self, strict: bool) -> Config:
        return replace(self, strict=self.strict or strict)


def _from_mapping(raw: Any, source: str) -> Config:
    if raw is None:  # empty, or every line commented out: nothing here is the file's
        return Config()
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of settings")
    if "validate" in raw:
        section = raw["validate"] if raw["validate"] is not None else {}
    else:  # top-level form: other stages' keys are theirs to check
        section = {k: v for k, v in raw.items() if k in _KEYS}
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: 'validate' must be a mapping")
    if not section:  # a file that sets nothing of validate's (all commented out): the defaults are labtax's
        return Config()
    unknown = set(section) - _KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown validate setting(s): {', '.join(sorted(map(str, unknown)))}",
                          hint=f"known: {', '.join(sorted(_KEYS))}")
    strict = section.get("strict", False)
    disable = section.get("disable", [])
    if isinstance(disable, str):
        disable = [disable]
    if not isinstance(strict, bool):
        raise ConfigError(f"{source}: 'strict' must be true or false")
    if not isinstance(disable, list) or not all(isinstance(d, str) for d in disable):
        raise ConfigError(f"{source}: 'disable' must be a list of rule ids")
    for pattern in disable:
        matched = [rule for rule in RULES if fnmatch.fnmatchcase(rule, pattern)]
        if not matched:
            raise ConfigError(f"{source}: 'disable' names no known rule: {pattern!r}",
                              hint="see `labtax validate --list-rules`")
        if all(rule in PROTECTED for rule in matched):
            raise ConfigError(f"{source}: rule {pattern!r} cannot be disabled",
                              hint="it keeps unreadable or unsafe leaves out of generation")
    limits = {}
    for key, default in (("max_file_bytes", DEFAULT_MAX_FILE_BYTES), ("max_yaml_nodes", DEFAULT_MAX_YAML_NODES)):
        value = section.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{source}: '{key}' must be a positive integer")
        limits[key] = value
    return Config(strict=strict, disable=tuple(disable), source=source, **limits)


def read_config_file(root: Path) -> tuple[Any, Path] | None:
    """`root/.labtax.yaml` parsed (a mapping, or None when it sets nothing) and its path; None without
    the file. The one reader of the file: `validate:` is read from it here, `generate:` and `train:`
    by labtax.settings. Parsed once per process (and version of the file): the command's defaults
    and its validation policy come from one read."""
    path = root / CONFIG_FILE
    try:
        st = path.stat()
    except OSError:
        return None
    if not path.is_file():
        return None
    # A copy: the callers get their own mapping, the cache keeps the parsed original.
    return copy.deepcopy(_parsed_config(str(path), st.st_mtime_ns, st.st_size, st.st_ino)), path


@functools.lru_cache(maxsize=8)
def _parsed_config(path: str, mtime_ns: int, size: int, inode: int) -> Any:
    return _parse_yaml(Path(path).read_bytes()[: DEFAULT_MAX_FILE_BYTES + 1], path)


def _parse_yaml(data: bytes, name: str) -> Any:
    import yaml

    try:
        return yaml.load(data.decode("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{name}: cannot read: {exc}".splitlines()[0]) from None


def load_config(root: Path) -> Config:
    """The settings for the taxonomy at `root` (defaults when it has none)."""
    found = read_config_file(root)
    if found is not None:
        return _from_mapping(found[0], str(found[1]))
    pyproject = root / "pyproject.toml"
    toml_bytes = pyproject.read_bytes() if pyproject.is_file() else None
    return _from_files(None, str(root / CONFIG_FILE), toml_bytes, str(pyproject))


def load_config_at(root: Path, ref: str) -> Config:
    """The settings as committed at `ref` (a pull request's base), ignoring the working tree, so the
    change under review cannot relax the policy it is checked against."""
    def show(name: str) -> bytes | None:
        code, out, _err = run_git(["show", f"{ref}:./{name}"], root)
        return out[: DEFAULT_MAX_FILE_BYTES + 1] if code == 0 else None

    if run_git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root).code != 0:
        raise ConfigError(f"--config-ref {ref!r} is not a commit of the repository at {root}")
    return _from_files(show(CONFIG_FILE), f"{ref}:{CONFIG_FILE}", show("pyproject.toml"), f"{ref}:pyproject.toml")


def _from_files(yaml_bytes: bytes | None, yaml_name: str, toml_bytes: bytes | None, toml_name: str) -> Config:
    if yaml_bytes is not None:
        return _from_mapping(_parse_yaml(yaml_bytes, yaml_name), yaml_name)
    if toml_bytes is not None:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # a declared dependency on 3.10
            import tomli as tomllib
        try:
            data = tomllib.loads(toml_bytes.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{toml_name}: cannot read: {exc}") from None
        table = data.get("tool", {}).get("labtax")
        if table is not None:
            return _from_mapping(table, f"{toml_name} [tool.labtax]")
    return Config()
