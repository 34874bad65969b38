"""Check a constructed qna.yaml against the JSON Schema files shipped in `labtax/schema/`.

The schemas are plain JSON Schema 2020-12 (any validator can use them; the tests check them with the
`jsonschema` package). Validation here interprets the small subset of keywords those files use, because
it is several times faster than a general validator and it maps every error to a YAML path whose line
and column the reader recorded. `tests/taxonomy/test_taxonomy_schema_files.py` holds it to the same
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


@cache
def schema_name(kind: str, version: int) -> str | None:
    name = f"{kind}.v{version}.json"
    return name if resources.files(SCHEMA_PACKAGE).joinpath(name).is_file() else None


# bool before int: a YAML boolean is an int to Python.
_DESCRIPTIONS: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
    (list, "a list"), (dict, "a mapping"),
)


def describe(value: Any) -> str:
    """The YAML-facing type name of a constructed value, for messages."""
    if value is None:
        return "null"
    for kind, name in _DESCRIPTIONS:
        if isinstance(value, kind):
            return name
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
    """_freeze, with a fast path for the common list items: mappings whose values are strings (a skill
    seed, a Q&A) or lists of such mappings (a knowledge seed's questions_and_answers)."""
    if type(item) is dict:
        parts: list[tuple[str, Any]] = []
        for k, v in item.items():
            if type(v) is str:
                parts.append((str(k), ("s", v)))
            elif type(v) is list and all(type(x) is dict and all(type(y) is str for y in x.values()) for x in v):
                parts.append((str(k), ("a", tuple(
                    ("o", frozenset((str(a), ("s", b)) for a, b in x.items())) for x in v))))
            else:
                return _freeze(item)
        return ("o", frozenset(parts))
    return _freeze(item)


class _Plan:
    """A schema node compiled once: `$ref`/`allOf` resolved, keywords read into attributes."""

    __slots__ = (
        "allowed",
        "closed",
        "const",
        "enum",
        "has_const",
        "items",
        "min_items",
        "min_length",
        "properties",
        "required",
        "subs",
        "text_min",
        "type",
        "unique",
    )

    def __init__(self) -> None:
        self.subs: tuple[_Plan, ...] = ()
        self.type: str | None = None
        self.has_const = False
        self.const: Any = None
        self.enum: frozenset[Any] | None = None
        self.min_length = 0
        self.min_items: int | None = None
        self.unique = False
        self.items: _Plan | None = None
        self.required: tuple[str, ...] = ()
        self.properties: dict[str, _Plan] = {}
        self.closed = False
        self.allowed = ""
        # For `{"type": "string", "minLength": n}` (possibly via $ref): n, so callers can skip a call.
        self.text_min: int | None = None


_PLANS: dict[tuple[int, str], _Plan] = {}


def _plan(schema: dict[str, Any], base: str) -> _Plan:
    key = (id(schema), base)
    plan = _PLANS.get(key)
    if plan is not None:
        return plan
    plan = _PLANS[key] = _Plan()  # registered first: a recursive $ref finds it
    subs = []
    if "$ref" in schema:
        target, target_base = _resolve_ref(schema["$ref"], base)
        subs.append(_plan(target, target_base))
    subs += [_plan(sub, base) for sub in schema.get("allOf", ())]
    plan.subs = tuple(subs)
    plan.type = schema.get("type")
    plan.has_const = "const" in schema
    plan.const = _freeze(schema["const"]) if plan.has_const else None
    plan.enum = frozenset(_freeze(v) for v in schema["enum"]) if "enum" in schema else None
    plan.min_length = schema.get("minLength", 0)
    plan.min_items = schema.get("minItems")
    plan.unique = bool(schema.get("uniqueItems"))
    items = schema.get("items")
    plan.items = _plan(items, base) if isinstance(items, dict) else None
    plan.required = tuple(schema.get("required", ()))
    plan.properties = {k: _plan(v, base) for k, v in schema.get("properties", {}).items()}
    plan.closed = schema.get("additionalProperties") is False or schema.get("unevaluatedProperties") is False
    plan.allowed = ", ".join(schema.get("properties", {}))
    simple = {k for k in schema if k not in ("description", "title", "$comment", "examples")}
    if simple <= {"type", "minLength"} and plan.type == "string":
        plan.text_min = plan.min_length
    elif simple == {"$ref"} and len(subs) == 1 and subs[0].text_min is not None:
        plan.text_min = subs[0].text_min
    return plan


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

    def check(self, value: Any, plan: _Plan, path: str) -> None:
        for sub in plan.subs:
            self.check(value, sub, path)
        label = path or "the document"
        expected = plan.type
        if expected is not None and not _is_type(value, expected):
            self._add("schema-type", path, f"{label} must be {_TYPE_NAMES[expected]}, not {describe(value)}")
            return
        if plan.has_const and _freeze(value) != plan.const:
            self._add("schema-const", path, f"{label} must be {_thaw(plan.const)!r}, not {value!r}")
        if plan.enum is not None and _freeze(value) not in plan.enum:
            self._add("schema-enum", path, f"{label} is not one of the allowed values")
        if isinstance(value, str):
            if len(value) < plan.min_length:
                self._add("schema-min-length", path, f"{label} must not be empty", "write some text here")
        elif isinstance(value, list):
            self._array(value, plan, path, label)
        elif isinstance(value, dict):
            self._object(value, plan, path, label)

    def _array(self, value: list[Any], plan: _Plan, path: str, label: str) -> None:
        minimum = plan.min_items
        if minimum is not None and len(value) < minimum:
            self._add("schema-min-items", path, f"{label} has {len(value)} item(s); at least {minimum} are required")
        if plan.unique:
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
        items = plan.items
        if items is not None:
            text_min = items.text_min
            for index, item in enumerate(value):
                if text_min is not None and type(item) is str and len(item) >= text_min:
                    continue  # the common case, without a call
                self.check(item, items, f"{path}[{index}]")

    def _object(self, value: dict[Any, Any], plan: _Plan, path: str, label: str) -> None:
        for key in plan.required:
            if key not in value:
                self._add("schema-required", path, f"{label} is missing the required key {key!r}")
        properties = plan.properties
        for key, item in value.items():
            prop = properties.get(key) if isinstance(key, str) else None
            if prop is not None:
                text_min = prop.text_min
                if text_min is not None and type(item) is str and len(item) >= text_min:
                    continue
                self.check(item, prop, child_path(path, key))
            elif plan.closed:
                sub = child_path(path, key)
                self._add("schema-unknown-key", sub, f"unknown key {str(key)!r} in {label}",
                          f"allowed keys here: {plan.allowed}", at_key=True)


def _thaw(frozen: Any) -> Any:
    """The plain value back from _freeze, for messages (only scalars are ever shown)."""
    tag, value = frozen
    if tag == "n" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def check_schema(file: str, value: Any, name: str, positions: dict[str, tuple[int, int]],
                 key_positions: dict[str, tuple[int, int]]) -> list[Finding]:
    """Findings for `value` against the packaged schema `name` (e.g. `knowledge.v3.json`)."""
    checker = SchemaChecker(file, positions, key_positions)
    checker.check(value, _plan(load_schema(name), name), "")
    return checker.findings
