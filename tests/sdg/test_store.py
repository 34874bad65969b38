"""The leaf store: atomic, checksummed, corrupt files detected and moved aside."""

from __future__ import annotations

from pathlib import Path

import pytest

from labtax.sdg.store import CorruptLeafError, LeafData, LeafStore

KEY = "ab" + "0" * 62


def sample(i: int) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": f"q{i} é"}, {"role": "assistant", "content": f"a{i}"}],
            "metadata": {"stage": "answer"}, "unmask": False}


def put(store: LeafStore, n: int = 5) -> Path:
    return store.put(LeafData(KEY, [sample(i) for i in range(n)], [sample(100)], {"kind": "knowledge"}))


def test_roundtrip(tmp_path: Path) -> None:
    store = LeafStore(tmp_path / "leaves")
    path = put(store)
    assert path == tmp_path / "leaves" / "ab" / f"{KEY}.jsonl"
    assert store.verify(KEY)
    data = store.load(KEY)
    assert data.samples == [sample(i) for i in range(5)]
    assert data.test == [sample(100)]
    assert data.meta == {"kind": "knowledge"}
    assert list(store.all_keys()) == [KEY]
    assert not list(store.garbage())  # no temp file left behind


def test_missing_key(tmp_path: Path) -> None:
    store = LeafStore(tmp_path / "leaves")
    assert not store.verify(KEY)
    with pytest.raises(KeyError):
        store.load(KEY)


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[: len(raw) // 2],  # truncated mid-line
        lambda raw: raw[: raw.rfind(b"\n", 0, len(raw) - 1) + 1],  # truncated at a line boundary
        lambda raw: raw.replace(b"a3", b"a4"),  # one flipped value
        lambda raw: raw + raw.split(b"\n")[1] + b"\n",  # a duplicated sample
        lambda raw: b"",  # empty
        lambda raw: raw.replace(KEY.encode(), b"cd" + b"0" * 62),  # someone else's file
    ],
)
def test_corrupt_file_is_detected_and_moved_aside(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    store = LeafStore(tmp_path / "leaves")
    path = put(store)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CorruptLeafError):
        store.load(KEY)
    assert not path.exists()
    assert [p.name for p in store.garbage()] == [f"{KEY}.jsonl.corrupt"]
    assert not store.verify(KEY)


def test_verify_quarantines(tmp_path: Path) -> None:
    store = LeafStore(tmp_path / "leaves")
    path = put(store)
    path.write_bytes(path.read_bytes()[:-3])
    assert not store.verify(KEY)
    assert not store.exists(KEY)


def test_rejects_non_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LeafStore(tmp_path).path_for("../../etc/passwd")
