"""The packaged schema files are valid JSON Schema 2020-12, and labtax's fast checker gives the same
verdict as the general `jsonschema` validator on the same files."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from labtax.taxonomy.reader import read_yaml
from labtax.taxonomy.schema import check_schema

SCHEMA_DIR = resources.files("labtax.schema")
NAMES = sorted(p.name for p in SCHEMA_DIR.iterdir() if p.name.endswith(".json") and p.name != "validate-report.json")
GOOD = Path(__file__).parent / "examples" / "good"


def registry() -> Registry:
    resources_ = []
    for name in NAMES:
        contents = json.loads(SCHEMA_DIR.joinpath(name).read_text())
        resource = Resource.from_contents(contents, default_specification=DRAFT202012)
        resources_ += [(name, resource), (contents["$id"], resource)]
    return Registry().with_resources(resources_)


REGISTRY = registry()


def reference_valid(name: str, value: Any) -> bool:
    schema = json.loads(SCHEMA_DIR.joinpath(name).read_text())
    return Draft202012Validator(schema, registry=REGISTRY).is_valid(value)


def ours_valid(name: str, value: Any) -> bool:
    return not check_schema("x", value, name, {}, {})


@pytest.mark.parametrize("name", NAMES)
def test_schema_file_is_valid_2020_12(name: str) -> None:
    schema = json.loads(SCHEMA_DIR.joinpath(name).read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_expected_schema_files_ship() -> None:
    for name in ("compositional_skills.v1.json", "compositional_skills.v2.json", "compositional_skills.v3.json",
                 "knowledge.v3.json", "foundational_skills.v3.json", "common.json"):
        assert name in NAMES
    assert "knowledge.v2.json" not in NAMES  # knowledge requires version 3


def _docs() -> list[tuple[str, Any]]:
    docs = []
    for path in sorted(GOOD.rglob("qna.yaml")):
        value = read_yaml("x", path.read_text(encoding="utf-8")).value
        kind = path.relative_to(GOOD).parts[0]
        version = int(value.get("version", 1))
        docs.append((f"{kind}.v{version}.json", value))
    return docs


DOCS = _docs()


@pytest.mark.parametrize(("name", "value"), DOCS)
def test_good_documents_valid_for_both(name: str, value: Any) -> None:
    assert reference_valid(name, value) and ours_valid(name, value)


def _mutate(value: Any, path: list[Any], replacement: Any) -> Any:
    doc = copy.deepcopy(value)
    node = doc
    for step in path[:-1]:
        node = node[step]
    if replacement is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = replacement
    return doc


_DELETE = object()


def _paths(value: Any, prefix: list[Any]) -> list[list[Any]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, prefix + [key])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, prefix + [i])
    return out


REPLACEMENTS = st.one_of(
    st.just(_DELETE), st.none(), st.booleans(), st.integers(-3, 6), st.floats(allow_nan=False),
    st.text(max_size=5), st.just(""), st.just([]), st.just({}), st.just(3.0),
    st.lists(st.text(max_size=3), max_size=3), st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_documents_same_verdict(data: st.DataObject) -> None:
    name, value = data.draw(st.sampled_from(DOCS))
    doc = value
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(doc, [])
        path = data.draw(st.sampled_from(paths))
        replacement = data.draw(REPLACEMENTS)
        if replacement is _DELETE and isinstance(path[-1], int):
            replacement = None
        doc = _mutate(doc, path, replacement)
    assert ours_valid(name, doc) == reference_valid(name, doc)
