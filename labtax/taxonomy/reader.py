"""A fast, position-aware YAML reader for qna.yaml files.

libyaml's composer (`yaml.compose` with `CSafeLoader`) builds a node tree whose nodes carry line and
column marks, ~10x faster than a round-trip parser. Values are constructed here from those nodes, with
the YAML 1.1 semantics of PyYAML's safe loader (what the public InstructLab tools use), by PyYAML's own
scalar constructors: `yes`/`no`/`on`/`off` are booleans, `1:30` is the sexagesimal int 90, `017` is
octal. Building the collections ourselves lets
us record a position for every YAML path, find duplicate keys, and refuse alias bombs before anything
is expanded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from labtax.taxonomy.model import Finding

try:  # libyaml is present in every supported install; the pure-Python loader is a slow fallback.
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

TAG = "tag:yaml.org,2002:"
_STR, _SEQ, _MAP, _MERGE = TAG + "str", TAG + "seq", TAG + "map", TAG + "merge"
# Expanded node count allowed after following aliases. A large real leaf has a few thousand nodes;
# the "billion laughs" pattern multiplies nodes through aliases and is refused long before this.
DEFAULT_MAX_NODES = 100_000



@dataclass
class ParsedYaml:
    """The outcome of reading one file: the value (None when unreadable) and what was found on the way."""

    value: Any = None
    ok: bool = False
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


class _Refused(Exception):
    """Construction stopped; carries the finding that explains why."""

    def __init__(self, rule: str, node: Node | None, message: str, yaml_path: str, hint: str | None = None):
        super().__init__(message)
        self.rule, self.node, self.message, self.yaml_path, self.hint = rule, node, message, yaml_path, hint


def _pos(node: Node | None) -> tuple[int, int]:
    if node is None:
        return (1, 1)
    return (node.start_mark.line + 1, node.start_mark.column + 1)


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_key_text: dict[str, str] = {}  # the same few keys repeat in every leaf: quote each once


def child_path(parent: str, key: Any) -> str:
    """`seed_examples[2].answer` style paths (what the public tools print as the YAML path)."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{parent}[{key}]"
    raw = str(key)
    text = _key_text.get(raw)
    if text is None:
        text = raw if _PLAIN_KEY.fullmatch(raw) else '"' + raw.replace('"', '\\"') + '"'
        if len(_key_text) < 10_000:
            _key_text[raw] = text
    return f"{parent}.{text}" if parent else text


# ------------------------------------------------------------------------------------ scalars

# PyYAML's own constructors for the YAML 1.1 scalar tags, so a value means here exactly what it means
# to `yaml.safe_load` (the public tools' reader): `!!bool y` is an error there, `!!int 0o17` is 15.
# They read only the node's text, so one instance serves every file.
_CONSTRUCT = yaml.constructor.SafeConstructor()
_SCALARS = {
    TAG + "bool": _CONSTRUCT.construct_yaml_bool,
    TAG + "int": _CONSTRUCT.construct_yaml_int,
    TAG + "float": _CONSTRUCT.construct_yaml_float,
    TAG + "null": _CONSTRUCT.construct_yaml_null,
    TAG + "timestamp": _CONSTRUCT.construct_yaml_timestamp,
    TAG + "binary": _CONSTRUCT.construct_yaml_binary,
}


def _scalar(node: ScalarNode, path: str) -> Any:
    if node.tag == _STR:
        return node.value
    construct = _SCALARS.get(node.tag)
    if construct is None:
        raise _Refused("yaml-tag", node, f"unsupported YAML tag {node.tag!r}", path,
                       "remove the tag; qna.yaml holds plain data")
    return construct(node)


def _scalar_at(node: ScalarNode, path: str) -> Any:
    try:
        return _scalar(node, path)
    except (ValueError, TypeError, OverflowError, KeyError, yaml.YAMLError) as exc:  # e.g. `!!int abc`
        raise _Refused("yaml-syntax", node, f"invalid {node.tag.rsplit(':', 1)[-1]} value {node.value!r}: {exc}", path)


# ------------------------------------------------------------------------------------ graph checks


def _check_graph(root: Node, limit: int) -> None:
    """Refuse cyclic aliases and alias expansion beyond `limit` nodes, without expanding anything.

    The composer shares one node object between an anchor and all its aliases, so the expanded size
    of a node is 1 + the sizes of its children, memoised per node: linear in the file, not in the bomb.
    """
    sizes: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        ident = id(node)
        if done:
            on_stack.discard(ident)
            total = 1
            for child in _children(node):
                total += sizes[id(child)]
                if total > limit:
                    raise _Refused(
                        "yaml-alias-limit", node,
                        f"aliases expand this document past {limit:,} nodes; refused (YAML alias bomb?)", "",
                        "write the values out instead of repeating anchors",
                    )
            sizes[ident] = total
            continue
        if ident in sizes:
            continue
        if ident in on_stack:
            raise _Refused("yaml-alias-limit", node, "an alias refers to its own enclosing node (a cycle)", "")
        on_stack.add(ident)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_stack:
                raise _Refused("yaml-alias-limit", child, "an alias refers to its own enclosing node (a cycle)", "")
            if id(child) not in sizes:
                stack.append((child, False))


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


# ------------------------------------------------------------------------------------ construction


class _Builder:
    """Builds values from nodes. The hot path of validation: written for speed (type() checks, local
    lookups), since it runs once per node of every leaf."""

    def __init__(self, out: ParsedYaml, file: str) -> None:
        self.out = out
        self.file = file
        self.positions = out.positions
        self.key_positions = out.key_positions

    def build(self, node: Node, path: str) -> Any:
        mark = node.start_mark
        self.positions[path] = (mark.line + 1, mark.column + 1)
        cls = type(node)
        if cls is ScalarNode:
            if node.tag == _STR:  # most values: no conversion needed
                return node.value
            return _scalar_at(node, path)  # type: ignore[arg-type]
        if cls is SequenceNode:
            if node.tag != _SEQ:
                raise _Refused("yaml-tag", node, f"unsupported YAML tag {node.tag!r}", path)
            build = self.build
            return [build(child, f"{path}[{i}]") for i, child in enumerate(node.value)]
        if cls is MappingNode:
            if node.tag != _MAP:
                raise _Refused("yaml-tag", node, f"unsupported YAML tag {node.tag!r}", path)
            return self._mapping(node, path)  # type: ignore[arg-type]
        raise _Refused("yaml-syntax", node, "unexpected YAML node", path)  # pragma: no cover

    def _mapping(self, node: MappingNode, path: str) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merged: dict[Any, Any] | None = None
        key_positions = self.key_positions
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged = merged or {}
                merged.update(self._merge_source(value_node, path))
                continue
            if type(key_node) is not ScalarNode:
                raise _Refused("yaml-key", key_node, "a mapping key must be a plain scalar", path)
            key = key_node.value if key_node.tag == _STR else _scalar_at(key_node, path)
            sub = child_path(path, key)
            mark = key_node.start_mark
            if key in result:
                first = key_positions.get(sub, (0, 0))[0]
                self.out.findings.append(Finding(
                    "yaml-duplicate-key", "error", self.file, mark.line + 1, mark.column + 1,
                    f"duplicate key {str(key)!r} (first defined on line {first}); the last one would silently win",
                    sub, "remove or rename one of them",
                ))
            key_positions[sub] = (mark.line + 1, mark.column + 1)
            result[key] = self.build(value_node, sub)
        if merged:  # merge keys (`<<: *base`) never override keys written in the mapping itself
            for key, value in merged.items():
                result.setdefault(key, value)
        return result

    def _merge_source(self, node: Node, path: str) -> dict[Any, Any]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        merged: dict[Any, Any] = {}
        for source in reversed(sources):  # earlier sources win, as in PyYAML
            if not isinstance(source, MappingNode):
                raise _Refused("yaml-key", source, "a merge key (<<) needs a mapping or a list of mappings", path)
            merged.update(self._mapping(source, path))
        return merged


def _syntax_finding(file: str, exc: yaml.YAMLError, text: str) -> Finding:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"{context}: {problem}" if context else str(problem)
    # A tab where indentation is expected is the most common cause; say so plainly.
    lines = text.split("\n")
    if "\t" in problem or "tab" in problem.lower() or (
        0 < line <= len(lines) and "\t" in lines[line - 1][: max(col, 1)]
    ):
        tab_line = line
        for number in range(line, 0, -1):  # the tab is often on the line that was being scanned
            if "\t" in lines[number - 1][: len(lines[number - 1]) - len(lines[number - 1].lstrip(" \t"))]:
                tab_line = number
                break
        tab_col = lines[tab_line - 1].find("\t") + 1 if 0 < tab_line <= len(lines) else col
        return Finding(
            "yaml-tab", "error", file, tab_line, max(tab_col, 1),
            "a tab character is used for indentation; YAML indents with spaces only", "",
            "replace the tab with spaces",
        )
    return Finding("yaml-syntax", "error", file, line, col, f"invalid YAML: {message}", "", None)


def read_yaml(file: str, text: str, max_nodes: int = DEFAULT_MAX_NODES) -> ParsedYaml:
    """Parse `text`; on failure `ok` is False and `findings` says why, with a position."""
    out = ParsedYaml()
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        out.findings.append(_syntax_finding(file, exc, text))
        return out
    except (ValueError, RecursionError, MemoryError) as exc:  # defensive: never a traceback
        out.findings.append(Finding("yaml-syntax", "error", file, 1, 1, f"invalid YAML: {exc}"))
        return out
    if root is None:
        out.findings.append(Finding(
            "yaml-empty", "error", file, 1, 1, "the file is empty (no YAML document)", "",
            "write the leaf's keys: version, created_by, seed_examples, ...",
        ))
        return out
    try:
        if "&" in text:  # no anchor, no alias: nothing can expand or loop
            _check_graph(root, max_nodes)
        value = _Builder(out, file).build(root, "")
    except _Refused as refused:
        line, col = _pos(refused.node)
        out.findings.append(
            Finding(refused.rule, "error", file, line, col, refused.message, refused.yaml_path, refused.hint)
        )
        return out
    except (ValueError, TypeError, OverflowError, yaml.YAMLError) as exc:  # a malformed int/timestamp/binary
        out.findings.append(Finding("yaml-syntax", "error", file, 1, 1, f"invalid YAML value: {exc}"))
        return out
    out.value, out.ok = value, True
    return out
