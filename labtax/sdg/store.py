"""The leaf store: each leaf's generated data, addressed by its content key, in `<output>/leaves/`.

Layout: `leaves/<key[:2]>/<key>.jsonl`. One file per key:

    line 1     header: {"format": "labtax-leaf/1", "key": KEY, "train": N, "test": M,
                        "sha256": SHA256 OF THE BODY BYTES, "meta": {...}}
    lines 2..  N training samples then M test samples (seed-derived), one JSON object per line.

Files are written to a temporary name in the same folder, fsynced, then renamed over the final name
(and the folder fsynced), so a reader sees either no file or a whole one. The header's checksum and
counts catch anything else (a truncated copy, a flipped byte): such a file is reported as corrupt,
moved aside, and the leaf is regenerated instead of used.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from labtax.data.names import LEAF_FILE_FORMAT as FORMAT
from labtax.util.atomic import atomic_write_bytes

T = TypeVar("T")


class CorruptLeafError(Exception):
    """A store file whose header, counts or checksum do not match its content."""


@dataclass
class LeafData:
    """What the store keeps for one key. `meta` holds kind, the path it was generated for, and the
    generation stats (counts, tokens, seconds, requests)."""

    key: str
    samples: list[dict[str, Any]]
    test: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    index: dict[str, Any] = field(default_factory=dict)  # the mixer's per-sample index (mix.py)


@dataclass
class RawLeaf:
    """A verified leaf file without decoding its samples: the whole file plus where its training and
    test lines lie (one JSON object per line, each ending in a newline). Not sliced: no copies."""

    key: str
    data: bytes
    train_span: tuple[int, int]
    test_span: tuple[int, int]
    meta: dict[str, Any]
    index: dict[str, Any]

    @property
    def train(self) -> bytes:
        return self.data[self.train_span[0] : self.train_span[1]]

    @property
    def test(self) -> bytes:
        return self.data[self.test_span[0] : self.test_span[1]]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def encode_leaf(data: LeafData) -> bytes:
    train = b"".join(_dumps(s) + b"\n" for s in data.samples)
    body = train + b"".join(_dumps(s) + b"\n" for s in data.test)
    header = {
        "format": FORMAT,
        "key": data.key,
        "train": len(data.samples),
        "test": len(data.test),
        "train_bytes": len(train),
        "sha256": hashlib.sha256(body).hexdigest(),
        "meta": data.meta,
        "index": data.index,
    }
    return _dumps(header) + b"\n" + body


def _verified_header(raw: bytes, key: str) -> tuple[dict[str, Any], int]:
    """Check header, key, checksum and split point; return (header, offset of the body in raw).
    Works on a memoryview so that a 100 MB store is not copied to be checked."""
    nl = raw.find(b"\n")
    if nl < 0:
        raise CorruptLeafError("no header line")
    try:
        header = json.loads(raw[:nl])
    except ValueError as exc:
        raise CorruptLeafError(f"unreadable header: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CorruptLeafError("not a labtax leaf file")
    if header.get("key") != key:
        raise CorruptLeafError(f"header key {header.get('key')!r} does not match the file name")
    start = nl + 1
    if hashlib.sha256(memoryview(raw)[start:]).hexdigest() != header.get("sha256"):
        raise CorruptLeafError("checksum mismatch (truncated or modified)")
    # The checksum covers the body; the split point between train and test lines is checked cheaply.
    split = header.get("train_bytes")
    size = len(raw) - start
    if not isinstance(split, int) or not 0 <= split <= size or (
        split and raw[start + split - 1] != 0x0A) or (size and raw[-1] != 0x0A):
        raise CorruptLeafError("the header does not match the body")
    return header, start


def split_verified(raw: bytes, key: str) -> tuple[dict[str, Any], bytes]:
    header, start = _verified_header(raw, key)
    return header, raw[start:]


def decode_raw(raw: bytes, key: str) -> RawLeaf:
    header, start = _verified_header(raw, key)
    split = start + int(header["train_bytes"])
    return RawLeaf(key, raw, (start, split), (split, len(raw)), dict(header.get("meta") or {}),
                   dict(header.get("index") or {}))


def decode_leaf(raw: bytes, key: str) -> LeafData:
    r = decode_raw(raw, key)
    header = json.loads(raw[: raw.find(b"\n")])
    try:
        train = [json.loads(line) for line in r.train.split(b"\n")[:-1]]
        test = [json.loads(line) for line in r.test.split(b"\n")[:-1]]
    except ValueError as exc:  # cannot happen with a matching checksum unless written corrupt
        raise CorruptLeafError(f"unreadable sample: {exc}") from None
    if len(train) != header.get("train") or len(test) != header.get("test"):
        raise CorruptLeafError("the header's counts do not match the body")
    return LeafData(key=key, samples=train, test=test, meta=r.meta, index=r.index)


def check_records(data: LeafData) -> None:
    """Every sample and test row is a chat record: a list of {role, content} string messages."""
    for row in [*data.samples, *data.test]:
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages
        ):
            raise CorruptLeafError("a record is not a list of {role, content} messages")


class LeafStore:
    """Content-addressed leaf data under `root` (normally `<output>/leaves`)."""

    def __init__(self, root: Path, *, untrusted: bool = False) -> None:
        self.root = Path(root)
        # A store restored from elsewhere (a CI cache): a matching checksum proves nothing about who
        # wrote the file, so every record is parsed and checked before the file is used.
        self.untrusted = untrusted

    def path_for(self, key: str) -> Path:
        if len(key) < 3 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"not a content key: {key!r}")
        return self.root / key[:2] / f"{key}.jsonl"

    def put(self, data: LeafData) -> Path:
        path = self.path_for(data.key)
        atomic_write_bytes(path, encode_leaf(data))
        return path

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def verify(self, key: str, stat_cache: dict[str, tuple[int, int]] | None = None) -> bool:
        """True when the file exists and its checksum holds; a corrupt file is moved aside (so it is
        regenerated) and False returned.

        `stat_cache` (key -> (size, mtime_ns) of a file that verified before) skips re-reading a file
        that has not been rewritten since; it is updated with each file verified here. Loading always
        checks the checksum, so a file damaged behind an unchanged mtime is still never used."""
        path = self.path_for(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        if stat_cache is not None and stat_cache.get(key) == (st.st_size, st.st_mtime_ns):
            return True
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return False
        try:
            _verified_header(raw, key)
            if self.untrusted:
                check_records(decode_leaf(raw, key))
        except CorruptLeafError:
            self.quarantine(key)
            return False
        if stat_cache is not None:
            stat_cache[key] = (st.st_size, st.st_mtime_ns)
        return True

    def load(self, key: str) -> LeafData:
        """The leaf's data. Raises KeyError when absent, CorruptLeafError (after moving the file
        aside) when it does not verify."""
        return self._read(key, decode_leaf)

    def load_raw(self, key: str) -> RawLeaf:
        """Like `load`, without decoding the samples (the mixer works on the encoded lines)."""
        return self._read(key, decode_raw)

    def _read(self, key: str, decode: Callable[[bytes, str], T]) -> T:
        try:
            raw = self.path_for(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None
        try:
            return decode(raw, key)
        except CorruptLeafError:
            self.quarantine(key)
            raise

    def quarantine(self, key: str) -> Path | None:
        """Move a bad file out of the key space (kept for inspection; `labtax gc` deletes it)."""
        path = self.path_for(key)
        target = path.with_name(path.name + ".corrupt")
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return None
        return target

    def all_keys(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir():
                for f in sorted(sub.glob("*.jsonl")):
                    yield f.stem

    def garbage(self) -> Iterator[Path]:
        """Leftovers that are never data: temp files of killed writers and quarantined files."""
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir():
                for f in sorted(sub.iterdir()):
                    if f.name.endswith((".tmp", ".corrupt")):
                        yield f

    def remove(self, key: str) -> int:
        """Delete a key's file; returns the bytes freed."""
        path = self.path_for(key)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size


class ReadOnlyLeafStore(LeafStore):
    """A dry run must not move corrupt files aside: it only reports them as to be generated."""

    def verify(self, key: str, stat_cache: dict[str, tuple[int, int]] | None = None) -> bool:
        try:
            st = self.path_for(key).stat()
            if stat_cache is not None and stat_cache.get(key) == (st.st_size, st.st_mtime_ns):
                return True
            split_verified(self.path_for(key).read_bytes(), key)
        except (FileNotFoundError, CorruptLeafError):
            return False
        return True
