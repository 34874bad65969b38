"""The shape of the code that issue 25 asked for, kept by counting with `ast` (nothing here runs
labtax but the one subprocess that checks what the light commands import):

- labtax imports inside function bodies are few: a function-level import hides a dependency and
  usually dodges a cycle that a module moved down a layer would break. The ones left defer a stage
  whose import costs numpy, PyYAML or torch to the command that runs it.
- functions stay short (<= 60 lines) but for the training step, named below.
- `labtax validate`, `diff`, `config`, `init` and `--help` never import torch, transformers or numpy.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import Counter
from pathlib import Path

from gitrepo import GitRepo

PACKAGE = Path(__file__).resolve().parents[1] / "labtax"

# Function-level labtax imports in the whole package (issue 25).
MAX_FUNCTION_LEVEL_IMPORTS = 20

MAX_FUNCTION_LINES = 60
# The one function allowed over MAX_FUNCTION_LINES, "path:name": the training step (a training
# recipe reads best as setup + step + checkpoint in one place). Add none.
LONG_FUNCTIONS = {
    "labtax/train/phases.py:_run",
}

Function = ast.FunctionDef | ast.AsyncFunctionDef


def _modules() -> list[tuple[str, ast.Module]]:
    return [(str(p.relative_to(PACKAGE.parent)), ast.parse(p.read_text(encoding="utf-8"), str(p)))
            for p in sorted(PACKAGE.rglob("*.py"))]


def _unit(path: str) -> str:
    parts = Path(path).parts  # labtax/<unit>/... or labtax/<module>.py
    return parts[1] if len(parts) > 2 else Path(parts[1]).stem


def _imports_labtax(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] == "labtax"
    return isinstance(node, ast.Import) and any(a.name.split(".")[0] == "labtax" for a in node.names)


def function_level_imports(tree: ast.Module) -> list[int]:
    """Line numbers of the labtax imports inside function bodies (each statement once, also when
    functions nest)."""
    lines: set[int] = set()
    for func in ast.walk(tree):
        if isinstance(func, Function):
            lines.update(n.lineno for n in ast.walk(func) if _imports_labtax(n))
    return sorted(lines)


def long_functions(path: str, tree: ast.Module) -> set[str]:
    return {f"{path}:{f.name}" for f in ast.walk(tree)
            if isinstance(f, Function) and (f.end_lineno or f.lineno) - f.lineno + 1 > MAX_FUNCTION_LINES}


def test_function_level_labtax_imports_are_few() -> None:
    counts: Counter[str] = Counter()
    for path, tree in _modules():
        counts[_unit(path)] += len(function_level_imports(tree))
    assert sum(counts.values()) > 0  # the walk saw the deferred imports the command line keeps
    assert sum(counts.values()) <= MAX_FUNCTION_LEVEL_IMPORTS, {unit: n for unit, n in counts.items() if n}


def test_no_new_long_functions() -> None:
    found = set().union(*(long_functions(path, tree) for path, tree in _modules()))
    assert found - LONG_FUNCTIONS == set(), f"split into named steps (<= {MAX_FUNCTION_LINES} lines)"


# The command line: the only modules that know click. The stages take typed options (frozen
# dataclasses the command line builds), never click's option dict or context.
COMMAND_LINE = {"labtax/cli.py", "labtax/cli_options.py", "labtax/cli_tools.py", "labtax/cli_use.py",
                "labtax/settings.py"}


def test_only_the_command_line_imports_click() -> None:
    users = {path for path, tree in _modules() for n in ast.walk(tree)
             if (isinstance(n, ast.Import) and any(a.name.split(".")[0] == "click" for a in n.names))
             or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "click")}
    assert "labtax/cli.py" in users  # the walk sees the command line's own
    assert users <= COMMAND_LINE, users - COMMAND_LINE


def test_the_counters_read_nested_and_relative_imports() -> None:
    text = ("from labtax import errors\n"
            "def outer() -> None:\n    from labtax.eval import run\n"
            "    def inner() -> None:\n        from . import data\n        import json\n"
            + "".join(f"    x{i} = {i}\n" for i in range(60)))
    tree = ast.parse(text)
    assert function_level_imports(tree) == [3, 5]
    assert long_functions("labtax/x.py", tree) == {"labtax/x.py:outer"}


def test_the_light_commands_never_import_torch(tmp_path: Path) -> None:
    # In one process, as a hook or a user runs them one after the other; each exits through SystemExit.
    repo = GitRepo(tmp_path / "tax")
    repo.write("compositional_skills/writing/haiku/qna.yaml", "version: 3\n")
    repo.commit("a leaf")
    code = ("import sys\nfrom labtax.cli import cli\n"
            "for args in (['--help'], ['validate', '--help'], ['validate'], ['diff', '--base', 'HEAD'], ['config'],"
            " ['init', '.'], ['train', '--help'], ['eval', '--help']):\n"
            "    try:\n        cli(args, prog_name='labtax')\n    except SystemExit as e:\n"
            "        assert e.code in (0, 1, None), (args, e.code)\n"
            "heavy = {'torch', 'transformers', 'numpy', 'peft', 'yaml'} & {m.split('.')[0] for m in sys.modules}\n"
            "print(sorted(heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo.root, capture_output=True, text=True, check=True)
    # validate reads YAML; nothing of these loads a model's libraries.
    assert out.stdout.strip().splitlines()[-1] == "['yaml']"
