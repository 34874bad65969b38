"""Check a constructed qna.yaml against the JSON Schema files shipped in `labtax/schema/`.

The schemas are plain JSON Schema 2020-12 (any validator can use them; the tests check them with the
`jsonschema` package). Validation here interprets the small subset of keywords those files use, because
it is several times faster than a general validator and it maps every error to a YAML path whose line
and column the reader recorded. `tests/taxonomy/test_schema_equivalence.py` holds it to the same
verdicts as `jsonschema` on every example.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from labtax.taxonomy.model import Finding
from labtax.taxonomy.reader import child_path

SCHEMA_PACKAGE = "labtax.schema"
_TYPE_NAMES = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean",
    "array": "a list", "object": "a mapping", "null": "null",
}


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A schema file from the package, e.g. `knowledge.v3.json`."""
    text = resources.files(SCHEMA_PACKAGE).joinpath(name).read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def schema_name(kind: str, version: int) -> str | None:
    name = f"{kind}.v{version}.json"
    return name if resources.files(SCHEMA_PACKAGE).joinpath(name).is_file() else None


def describe(value: Any) -> str:
    """The YAML-facing type name of a constructed value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"  # dates, bytes


def _is_type(value: Any, name: str) -> bool:
    if name == "string":
        return isinstance(value, str)
    if name == "integer":  # JSON Schema: 3.0 is an integer, True is not
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "array":
        return isinstance(value, list)
    if name == "object":
        return isinstance(value, dict)
    if name == "null":
        return value is None
    return False


def _freeze(value: Any) -> Any:
    """A hashable form with JSON Schema equality (1 == 1.0, but True != 1) for uniqueItems."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", float(value))
    if isinstance(value, list):
        return ("a", tuple(_freeze(v) for v in value))
    if isinstance(value, dict):
        return ("o", frozenset((str(k), _freeze(v)) for k, v in value.items()))
    return ("s", repr(value)) if not isinstance(value, str) else ("s", value)


@cache
def _resolve_ref(ref: str, base: str) -> tuple[dict[str, Any], str]:
    """The schema a `$ref` points to (a packaged file and/or a JSON pointer), and its file."""
    file, _, pointer = ref.partition("#")
    file = file or base
    node: Any = load_schema(file)
    for part in [p for p in pointer.split("/") if p]:
        node = node[part]
    return node, file


def _item_key(item: Any) -> Any:
    """_freeze, with a fast path for the common list item: a mapping of strings (a seed example)."""
    if isinstance(item, dict) and all(type(v) is str for v in item.values()):
        return ("o", frozenset((str(k), ("s", v)) for k, v in item.items()))
    return _freeze(item)


class SchemaChecker:
    """Validates one document against one schema file, collecting findings with positions."""

    def __init__(self, file: str, positions: dict[str, tuple[int, int]], key_positions: dict[str, tuple[int, int]]):
        self.file = file
        self.positions = positions
        self.key_positions = key_positions
        self.findings: list[Finding] = []

    def _add(self, rule: str, path: str, message: str, hint: str | None = None, *, at_key: bool = False) -> None:
        pos = (self.key_positions.get(path) if at_key else None) or self.positions.get(path) or (1, 1)
        self.findings.append(Finding(rule, "error", self.file, pos[0], pos[1], message, path, hint))

    def check(self, value: Any, schema: dict[str, Any], path: str, base: str) -> None:
        if "$ref" in schema:
            target, target_base = _resolve_ref(schema["$ref"], base)
            self.check(value, target, path, target_base)
        for sub in schema.get("allOf", ()):
            self.check(value, sub, path, base)
        label = path or "the document"
        expected = schema.get("type")
        if expected is not None and not _is_type(value, expected):
            self._add("schema-type", path, f"{label} must be {_TYPE_NAMES[expected]}, not {describe(value)}")
            return
        if "const" in schema and _freeze(value) != _freeze(schema["const"]):
            self._add("schema-const", path, f"{label} must be {schema['const']!r}, not {value!r}")
        if "enum" in schema and _freeze(value) not in {_freeze(v) for v in schema["enum"]}:
            self._add("schema-enum", path, f"{label} must be one of {schema['enum']!r}")
        if isinstance(value, str):
            if len(value) < schema.get("minLength", 0):
                self._add("schema-min-length", path, f"{label} must not be empty", "write some text here")
        elif isinstance(value, list):
            self._array(value, schema, path, base, label)
        elif isinstance(value, dict):
            self._object(value, schema, path, base, label)

    def _array(self, value: list[Any], schema: dict[str, Any], path: str, base: str, label: str) -> None:
        minimum = schema.get("minItems")
        if minimum is not None and len(value) < minimum:
            self._add("schema-min-items", path, f"{label} has {len(value)} item(s); at least {minimum} are required")
        if schema.get("uniqueItems"):
            seen: dict[Any, int] = {}
            for index, item in enumerate(value):
                key = _item_key(item)
                if key in seen:
                    self._add(
                        "schema-unique-items", child_path(path, index),
                        f"{child_path(path, index)} repeats {child_path(path, seen[key])}; items must be distinct",
                        "change or remove the repeated item",
                    )
                else:
                    seen[key] = index
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                self.check(item, items, child_path(path, index), base)

    def _object(self, value: dict[Any, Any], schema: dict[str, Any], path: str, base: str, label: str) -> None:
        for key in schema.get("required", ()):
            if key not in value:
                self._add("schema-required", path, f"{label} is missing the required key {key!r}")
        properties: dict[str, Any] = schema.get("properties", {})
        closed = schema.get("additionalProperties") is False or schema.get("unevaluatedProperties") is False
        for key, item in value.items():
            sub = child_path(path, key)
            if isinstance(key, str) and key in properties:
                self.check(item, properties[key], sub, base)
            elif closed:
                allowed = ", ".join(properties)
                self._add("schema-unknown-key", sub, f"unknown key {str(key)!r} in {label}",
                          f"allowed keys here: {allowed}", at_key=True)


def check_schema(file: str, value: Any, name: str, positions: dict[str, tuple[int, int]],
                 key_positions: dict[str, tuple[int, int]]) -> list[Finding]:
    """Findings for `value` against the packaged schema `name` (e.g. `knowledge.v3.json`)."""
    checker = SchemaChecker(file, positions, key_positions)
    checker.check(value, load_schema(name), "", name)
    return checker.findings
