"""Prompt templates as versioned data files (`*.yaml` here), and their loader.

A prompt file holds `version`, `stage`, `system` and `user` templates. `{name}` placeholders are
filled in ONE pass (a value that itself contains "{x}" is never expanded again), so seed text with
braces is safe. The system text starts with a `STAGE: <stage>` line: it tells the teacher what kind
of answer is expected and lets a scripted test server recognise the stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

PROMPT_DIR = Path(__file__).parent
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    stage: str
    system: str
    user: str

    def render(self, **values: str) -> tuple[tuple[str, str], ...]:
        """The (role, content) messages with every placeholder filled."""

        def fill(template: str) -> str:
            def sub(m: re.Match[str]) -> str:
                if m.group(1) not in values:
                    raise KeyError(f"prompt {self.name}: no value for {{{m.group(1)}}}")
                return str(values[m.group(1)])

            return _PLACEHOLDER.sub(sub, template).strip()

        return (("system", fill(self.system)), ("user", fill(self.user)))


@cache
def load_prompt(name: str) -> Prompt:
    path = PROMPT_DIR / name
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return Prompt(name, int(data["version"]), str(data["stage"]), str(data["system"]), str(data["user"]))


def prompt_files() -> list[Path]:
    return sorted(PROMPT_DIR.glob("*.yaml"))
