"""Property-based: random and mutated YAML never makes the validator raise."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labtax.taxonomy import leaves as taxonomy
from labtax.taxonomy.config import Config
from labtax.taxonomy.engine import check_data

GOOD = Path(__file__).parent / "examples" / "good"
SEEDS = [p.read_bytes() for p in sorted(GOOD.rglob("qna.yaml"))]
YAML_BITS = [b":", b"- ", b"\t", b"&a ", b"*a", b"<<: ", b"!!", b"? ", b"[", b"]", b"{", b"}", b"'", b'"', b"|", b">",
             b"---\n", b"\n", b"  ", b"#", b"%YAML 1.1\n", b"\xff", b"\x00", b"yes", b"1:30", b"~", b"version: 4\n"]
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        bit = draw(st.sampled_from(YAML_BITS) | st.binary(max_size=4))
        if action == "insert":
            data[at:at] = bit
        elif action == "delete":
            del data[at:at + draw(st.integers(1, 40))]
        else:
            data[at:at + len(bit)] = bit
    return bytes(data)


def _never_raises(tmp_path: Path, data: bytes) -> None:
    for rel, kind in (("compositional_skills/a/qna.yaml", "compositional_skills"), ("knowledge/a/qna.yaml", "knowledge"),
                      ("foundational_skills/a/qna.yaml", "foundational_skills"), ("other/qna.yaml", None)):
        findings = check_data(tmp_path, rel, kind, data, Config())  # type: ignore[arg-type]
        for finding in findings:
            assert finding.line >= 1 and finding.col >= 1 and finding.rule and finding.message
        if kind is not None:
            try:
                taxonomy.parse_leaf(rel, data)
            except taxonomy.LeafError as exc:
                assert exc.findings


@FUZZ
@given(data=mutated())
def test_mutated_leaves_never_raise(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    _never_raises(tmp_path_factory.getbasetemp(), data)


@FUZZ
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_random_bytes_never_raise(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    _never_raises(tmp_path_factory.getbasetemp(), data)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(value=st.dictionaries(st.sampled_from(["version", "created_by", "task_description", "seed_examples", "domain",
                                              "document", "document_outline", "x"]), yaml_values, max_size=6))
def test_random_documents_never_raise(tmp_path_factory: pytest.TempPathFactory, value: dict) -> None:
    import yaml

    _never_raises(tmp_path_factory.getbasetemp(), yaml.safe_dump(value, allow_unicode=True).encode())
