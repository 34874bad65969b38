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
import functools
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


@functools.cache  # parsed once for every test here (~0.7 CPU-s a parse of the package)
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


# The stages data flows through (architecture.md), and what they hand each other.
STAGES = {"taxonomy", "diff", "teachers", "sdg", "mix", "train", "eval", "report", "data"}
FREE_FORM = ("dict[str, Any]", "Mapping[str, Any]", "dict[str, object]")
# What still crosses a stage boundary as a free-form mapping, and why; everything else that crosses
# is a dataclass (LeafSpec, GenerationStats, Manifest, EvalReport, TeacherStats, the settings).
# Add none without a reason of these kinds.
FREE_FORM_CROSSINGS = {
    # sample rows: the JSONL chat rows ({"messages", "metadata", ...}) stay dicts (architecture.md)
    **dict.fromkeys(["labtax.data.sample:chunk_of", "labtax.data.sample:question_of",
                     "labtax.data.sample:reference_split", "labtax.data.sample:slim",
                     "labtax.data.sample:user_text", "labtax.data.sample:with_user",
                     "labtax.mix.held_out:seed_test_samples", "labtax.mix.mix:MixLeaf.from_samples",
                     "labtax.mix.mix:prepare_leaf"], "sample rows"),
    # a JSON document as written (--format json, the manifest's settings record): the edge itself
    **dict.fromkeys(["labtax.diff.model:DiffResult.to_dict", "labtax.diff.model:LeafChange.to_dict",
                     "labtax.sdg.planning:LeafPlan.to_dict", "labtax.sdg.planning:Plan.to_dict",
                     "labtax.sdg.planning:Plan.settings_record", "labtax.mix.mix:MixSettings.as_dict",
                     # the mixer's leaf index as the store's file header keeps it
                     "labtax.mix.mix:LeafIndex.to_json", "labtax.mix.mix:LeafIndex.from_json",
                     # the manifest's one reader and writer (data/manifest.py), record by record, and the
                     # settings records it keeps as written (what the content keys hash)
                     *(f"labtax.data.manifest:{record}.{edge}"
                       for record in ("GenerationStats", "LeafEntry", "SetFile", "FaultSummary", "RunSummary",
                                      "Manifest")
                       for edge in ("to_json", "from_json")),
                     "labtax.data.manifest:Manifest.settings", "labtax.data.manifest:Manifest.mix"],
                    "JSON document"),
    # a pipeline's stats record (stages, faults, seconds: more than the manifest keeps), as the leaf
    # store's meta holds it in JSON; the manifest's GenerationStats is read from it
    "labtax.data.manifest:GenerationStats.from_stats": "pipeline stats",
    # the raw YAML: what the content key hashes (sdg/keys.py); generation reads Leaf.spec
    "labtax.taxonomy.model:Leaf.data": "raw YAML",
    # a backend's extras beside the text (choice_probs: read through TeacherResponse.choice_probs)
    "labtax.teachers.base:TeacherResponse.extra": "backend extras",
}


def _module_name(path: str) -> str:
    parts = Path(path).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _reexports() -> dict[tuple[str, str], tuple[str, str]]:
    """(package, name) -> (module, name) for each labtax name a package's __init__.py imports by name."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for path, tree in _modules():
        if Path(path).name != "__init__.py":
            continue
        package = _module_name(path)
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                source = (f"{package}.{node.module}" if node.module else package) if node.level else node.module
                if (source or "").startswith("labtax"):
                    for alias in node.names:
                        found[(package, alias.asname or alias.name)] = (str(source), alias.name)
    return found


def free_form_crossings() -> dict[str, set[str]]:
    """{"module:name": the other stages that import it} for the functions, methods and class fields
    of a stage whose annotations hold a free-form mapping, where another stage imports the function
    or its class by name."""
    importers: dict[tuple[str, str], set[str]] = {}
    found: dict[str, str] = {}  # "module:qualified name" -> its top-level name
    for path, tree in _modules():
        module = _module_name(path)
        modules: dict[str, str] = {}  # a local name bound to a labtax module (`from labtax.mix import mix`)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("labtax"):
                for alias in node.names:
                    importers.setdefault((str(node.module), alias.name), set()).add(_unit(path))
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        for node in ast.walk(tree):  # `mix.MixLeaf`: a name used through its module
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
                importers.setdefault((modules[node.value.id], node.attr), set()).add(_unit(path))

        def visit(body: list[ast.stmt], prefix: str, top: str | None, module: str = module) -> None:
            for item in body:
                if isinstance(item, Function):
                    notes = [a.annotation for a in item.args.args + item.args.kwonlyargs if a.annotation]
                    notes += [item.returns] if item.returns else []
                    if any(f in ast.unparse(n) for n in notes for f in FREE_FORM):
                        found[f"{module}:{prefix}{item.name}"] = top or item.name
                elif isinstance(item, ast.ClassDef):
                    visit(item.body, f"{prefix}{item.name}.", top or item.name)
                elif isinstance(item, ast.AnnAssign) and top and any(f in ast.unparse(item.annotation)
                                                                     for f in FREE_FORM):
                    found[f"{module}:{prefix}{ast.unparse(item.target)}"] = top

        visit(tree.body, "", None)
    # A package's re-export (`from labtax.data import GenerationStats`, labtax/data/__init__.py) counts
    # as an import of the module that defines the name.
    for (package, name), origin in _reexports().items():
        if (package, name) in importers:
            importers.setdefault(origin, set()).update(importers[(package, name)])
    crossings: dict[str, set[str]] = {}
    for name, top in found.items():
        module = name.split(":")[0]
        unit = module.split(".")[1]
        users = {u for u in importers.get((module, top), set()) if u in STAGES and u != unit}
        if unit in STAGES and users:
            crossings[name] = users
    return crossings


def test_stages_hand_each_other_typed_data() -> None:
    crossings = free_form_crossings()
    assert "labtax.data.sample:user_text" in crossings  # the walk sees what the allow-list names
    new = {name: sorted(users) for name, users in crossings.items() if name not in FREE_FORM_CROSSINGS}
    assert not new, f"a free-form mapping crosses a stage boundary: give it a dataclass ({new})"
    assert set(FREE_FORM_CROSSINGS) <= set(crossings), "typed since: drop it from FREE_FORM_CROSSINGS"


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
