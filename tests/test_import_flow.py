"""The import rules docs/architecture.md states, checked by reading every module's imports with `ast`:
at module level, inside functions and under TYPE_CHECKING alike (a deferred import is still a
dependency; it only hides from a cycle). Nothing here imports labtax, so a broken rule is reported
as the edge that breaks it, file and line, never as an import error."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "labtax"

# Each unit of the package (a stage folder or a top-level module) and its place in the flow: a unit
# imports only units of a lower rank. The stages come in the order data flows through them
# (architecture.md: taxonomy -> diff -> sdg (with teachers) -> train -> eval -> report); below them
# the foundations every stage may use; above them the command line, which alone wires stages.
RANK: dict[str, int] = {
    "errors": 0,
    "util": 1, "progress": 1, "labtax": 1,  # `labtax` is the package's own __init__ (__version__)
    "data": 2, "model_parts": 2,
    "models": 3,
    "taxonomy": 4, "compute": 4,  # compute: an in-process model's dtype/width on this machine (uses models)
    "diff": 5, "teachers": 5, "scaffold": 5, "mix": 5,  # mix: the sets from the leaves' data (sdg mixes after it generates)
    "sdg": 6,
    "train": 7,
    "eval": 8,
    "report": 9, "use": 9,  # use: chat and export of a trained model (reads train/'s model card records)
    "settings": 10, "cli_options": 11, "cli_tools": 12, "cli_use": 12,  # settings: .labtax.yaml as the commands' defaults
    "cli": 13, "__main__": 14,
}

# Edges the ranks allow that the architecture still forbids: sdg, train and eval share models.py,
# so that none of the three imports another; train's checkpoint selection receives eval's score as
# a callable (cli.py passes it) instead of importing eval.
FORBIDDEN: dict[tuple[str, str], str] = {
    ("train", "sdg"): "train/ reads the sets through labtax.data, never sdg/",
    ("eval", "sdg"): "eval/ reads test.jsonl and the manifest through labtax.data, never sdg/",
    ("eval", "train"): "eval/ and train/ share labtax.models; neither imports the other",
    ("train", "mix"): "train/ reads the sets through labtax.data, never mix/",
    ("eval", "mix"): "eval/ reads test.jsonl through labtax.data, never mix/",
}

# What `labtax diff` may import of the taxonomy: its model and discovery, never the validator
# (architecture.md; bench/diff_bench.py measures the process it makes).
DIFF_MAY_USE_OF_TAXONOMY = {"labtax.taxonomy.model", "labtax.taxonomy.discover", "labtax.taxonomy.config",
                            "labtax.taxonomy.engine"}


@dataclass(frozen=True)
class Edge:
    source: str  # the importing module, dotted
    target: str  # the imported labtax module, dotted
    where: str  # path:line


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports_of(path: Path) -> Iterator[Edge]:
    name = str(path.relative_to(PACKAGE.parent))
    yield from imports_in(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py", name)


def imports_in(text: str, source: str, is_package: bool, name: str) -> Iterator[Edge]:
    """The imports of one module's source `text` (module `source`; `name` for messages)."""
    package = source if is_package else source.rpartition(".")[0]
    nodes = [n for n in ast.walk(ast.parse(text, name)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    for node in sorted(nodes, key=lambda n: n.lineno):
        where = f"{name}:{node.lineno}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Edge(source, alias.name, where)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "labtax":  # `from labtax import models`: each name a module, or __init__'s
                for alias in node.names:
                    is_module = (PACKAGE / alias.name).is_dir() or (PACKAGE / f"{alias.name}.py").is_file()
                    yield Edge(source, f"labtax.{alias.name}" if is_module else "labtax", where)
            else:
                yield Edge(source, module, where)


def labtax_edges() -> list[Edge]:
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        edges += [e for e in imports_of(path) if e.target == "labtax" or e.target.startswith("labtax.")]
    return edges


def broken_rules(edges: list[Edge]) -> list[str]:
    broken = []
    for edge in edges:
        source, target = unit_of(edge.source), unit_of(edge.target)
        if source == target:
            continue
        if source not in RANK or target not in RANK:
            broken.append(f"{edge.where}: {edge.source} -> {edge.target}: a unit with no place in RANK "
                          f"(add it where docs/architecture.md puts it)")
        elif RANK[target] >= RANK[source]:
            broken.append(f"{edge.where}: {edge.source} -> {edge.target}: {target} does not come before "
                          f"{source} in the flow")
        elif (source, target) in FORBIDDEN:
            broken.append(f"{edge.where}: {edge.source} -> {edge.target}: {FORBIDDEN[source, target]}")
        elif source == "diff" and target == "taxonomy" and edge.target not in DIFF_MAY_USE_OF_TAXONOMY:
            broken.append(f"{edge.where}: {edge.source} -> {edge.target}: diff uses the taxonomy's model "
                          f"and discovery only")
    return broken


def test_every_import_follows_the_flow() -> None:
    edges = labtax_edges()
    assert len(edges) > 100  # the walk found the package's imports at all
    assert broken_rules(edges) == []


def test_nothing_below_the_command_line_imports_it() -> None:
    cli = {"cli", "cli_options", "cli_tools", "cli_use", "__main__"}
    users = {unit_of(e.source) for e in labtax_edges() if unit_of(e.target) in cli}
    assert users <= cli


def test_the_checker_sees_function_level_and_relative_imports() -> None:
    # The rules are only as good as the reading: a lazy import inside a function, a relative one and a
    # `from labtax import <module>` each give the edge a reviewer would see.
    text = ("def later() -> None:\n    from labtax.sdg import dedup\n"
            "from ..train import config\nfrom labtax import cli\nfrom labtax import __version__\n")
    edges = [e for e in imports_in(text, "labtax.eval.probe", False, "labtax/eval/probe.py")
             if e.target.startswith("labtax")]
    assert [e.target for e in edges] == ["labtax.sdg", "labtax.train", "labtax.cli", "labtax"]
    found = broken_rules(edges)
    assert [line.split(": ", 1)[0] for line in found] == ["labtax/eval/probe.py:2", "labtax/eval/probe.py:3",
                                                          "labtax/eval/probe.py:4"]
    assert "never sdg/" in found[0] and "neither imports the other" in found[1] and "before eval" in found[2]
