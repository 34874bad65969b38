"""Validation of one leaf file, and of many in parallel.

Order per file: safe reading (symlinks, file type, size, encoding) -> YAML -> version -> schema ->
rules -> attribution.txt. Nothing here runs code from the taxonomy or touches the network.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from labtax.taxonomy.config import Config
from labtax.taxonomy.discover import looks_like_leaf
from labtax.taxonomy.lint import LINT_RULES, lint_text
from labtax.taxonomy.model import ATTRIBUTION_FILENAME, LEAF_FILENAME, Finding, Kind, kind_of
from labtax.taxonomy.reader import ParsedYaml, read_yaml
from labtax.taxonomy.rules import check_rules
from labtax.taxonomy.schema import check_schema, schema_name

SUPPORTED_VERSIONS = (1, 2, 3)
PARALLEL_THRESHOLD = 200  # below this, starting worker processes costs more than it saves


def _err(file: str, rule: str, message: str, hint: str | None = None, line: int = 1, col: int = 1,
         yaml_path: str = "") -> Finding:
    return Finding(rule, "error", file, line, col, message, yaml_path, hint)


def read_leaf_bytes(root: str | Path, rel: str, max_bytes: int) -> tuple[bytes | None, list[Finding]]:
    """The file's bytes, or findings saying why it was not read (never raises for a bad file)."""
    full = os.path.join(root, rel)
    try:
        info = os.lstat(full)
        if stat.S_ISLNK(info.st_mode):
            target = os.path.realpath(full)
            base = os.path.realpath(root)
            if os.path.commonpath([target, base]) != base:
                return None, [_err(rel, "symlink-outside", f"symlink points outside the repository (to {target})",
                                   "replace the link with the file itself")]
            info = os.stat(full)
        if not stat.S_ISREG(info.st_mode):
            what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            return None, [_err(rel, "file-not-regular", f"{PurePosixPath(rel).name} is {what}",
                               "a leaf is a plain file named qna.yaml")]
        if info.st_size > max_bytes:
            return None, [_err(rel, "file-too-large",
                               f"file is {info.st_size:,} bytes; the limit is {max_bytes:,}",
                               "split the leaf, or raise validate.max_file_bytes in .labtax.yaml")]
        # O_NONBLOCK: if the file were swapped for a FIFO after the check, reading must not hang.
        fd = os.open(full, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            return None, [_err(rel, "file-too-large", f"file is larger than the limit of {max_bytes:,} bytes")]
        return data, []
    except OSError as exc:
        return None, [_err(rel, "file-unreadable", f"cannot read the file: {exc.strerror or exc}")]


def decode(rel: str, data: bytes) -> tuple[str | None, list[Finding]]:
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [_err(rel, "encoding", f"not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                           "save the file as UTF-8", line, col)]


def leaf_version(rel: str, kind: str, value: dict[Any, Any], positions: dict[str, tuple[int, int]]
                 ) -> tuple[int | None, list[Finding]]:
    """The declared version (1 when absent), or None with a finding when it is unusable."""
    line, col = positions.get("version", (1, 1))
    raw = value.get("version", 1)
    version: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        version = raw
    elif isinstance(raw, float) and raw.is_integer():  # JSON Schema (and the public tools) accept 3.0
        version = int(raw)
    if version is None:
        hint = f"write version: {raw} without quotes" if isinstance(raw, str) and raw.strip().isdigit() else None
        return None, [_err(rel, "version", f"version must be an integer, not {raw!r}", hint, line, col, "version")]
    if version not in SUPPORTED_VERSIONS:
        return None, [_err(rel, "version", f"unsupported version {version}; labtax reads versions 1, 2 and 3",
                           "use version: 3", line, col, "version")]
    if kind == "knowledge" and version < 3:
        return None, [_err(rel, "knowledge-version", "knowledge requires version 3",
                           "set version: 3 and use the v3 layout (context + questions_and_answers, "
                           "document_outline)", line, col, "version")]
    return version, []


def attribution_path(rel: str) -> str:
    return f"{rel.rpartition('/')[0]}/{ATTRIBUTION_FILENAME}" if "/" in rel else ATTRIBUTION_FILENAME


def check_attribution_bytes(rel: str, data: bytes | None) -> list[Finding]:
    """The attribution check on the file's bytes as read elsewhere (a commit's tree); None = missing."""
    attribution = attribution_path(rel)
    if data is None:
        return [_err(rel, "attribution", f"no {ATTRIBUTION_FILENAME} beside this qna.yaml",
                     f"add {attribution} naming the sources of the seed examples (title, link, license)")]
    if not data.strip():
        return [_err(rel, "attribution", f"{attribution} is empty", "name the sources of the seed examples")]
    return []


def check_attribution(root: str | Path, rel: str) -> list[Finding]:
    attribution = attribution_path(rel)
    full = os.path.join(root, attribution)
    try:
        info = os.stat(full)
        empty = not stat.S_ISREG(info.st_mode) or info.st_size == 0
        if not empty and info.st_size < 4096:
            with open(full, "rb") as handle:
                empty = not handle.read().strip()
    except OSError:
        return [_err(rel, "attribution", f"no {ATTRIBUTION_FILENAME} beside this qna.yaml",
                     f"add {attribution} naming the sources of the seed examples (title, link, license)")]
    if empty:
        return [_err(rel, "attribution", f"{attribution} is empty", "name the sources of the seed examples")]
    return []


def parse_text(rel: str, data: bytes, max_nodes: int) -> tuple[ParsedYaml | None, str | None, list[Finding]]:
    text, findings = decode(rel, data)
    if text is None:
        return None, None, findings
    parsed = read_yaml(rel, text, max_nodes)
    if parsed.ok and not isinstance(parsed.value, dict):
        parsed.ok = False
        what = "a list" if isinstance(parsed.value, list) else "a single value"
        parsed.findings.append(_err(rel, "yaml-not-mapping",
                                    f"the top of the file is {what}; a leaf is a mapping of keys",
                                    "start with keys such as version:, created_by:, seed_examples:"))
    return parsed, text, parsed.findings


def check_leaf(root: str | Path, rel: str, config: Config) -> list[Finding]:
    """Every finding for one file (before config filtering)."""
    findings: list[Finding] = []
    name = rel.rpartition("/")[2]
    if name != LEAF_FILENAME:
        findings.append(_err(rel, "leaf-filename", f"leaf files must be named exactly qna.yaml, not {name!r}",
                             f"rename it: git mv {rel} {PurePosixPath(rel).parent / LEAF_FILENAME}"))
        if not looks_like_leaf(name):
            return findings
    kind: Kind | None = kind_of(rel)
    if kind is None:
        findings.append(_err(rel, "leaf-location", "a qna.yaml must live under knowledge/, "
                             "compositional_skills/ or foundational_skills/",
                             "move the leaf folder under one of the three roots"))
    data, problems = read_leaf_bytes(root, rel, config.max_file_bytes)
    findings += problems
    if data is None:
        return findings
    return findings + check_data(root, rel, kind, data, config)


def check_data(root: str | Path, rel: str, kind: Kind | None, data: bytes, config: Config,
               attribution: Callable[[str], list[Finding]] | None = None) -> list[Finding]:
    """Every finding about a leaf's content (`root` is only used to look for attribution.txt, unless
    `attribution(rel)` checks it elsewhere: in a commit's tree)."""
    findings: list[Finding] = []
    parsed, text, problems = parse_text(rel, data, config.max_yaml_nodes)
    findings += problems
    if text is not None:
        findings += lint_text(rel, text)
    if parsed is None or not parsed.ok:
        return findings
    value: dict[Any, Any] = parsed.value
    if kind is None:  # guess, like the public tools, so the other problems still show
        kind = "knowledge" if "document" in value else "compositional_skills"
    version, problems = leaf_version(rel, kind, value, parsed.positions)
    findings += problems
    if version is None:
        return _by_version(findings, None)
    schema = schema_name(kind, version)
    if schema is not None:
        findings += check_schema(rel, value, schema, parsed.positions, parsed.key_positions)
    findings += check_rules(rel, kind, version, value, parsed.positions, parsed.key_positions)
    if version >= 2:
        findings += attribution(rel) if attribution is not None else check_attribution(root, rel)
    return _by_version(findings, version)


def _by_version(findings: list[Finding], version: int | None) -> list[Finding]:
    """The public tools lint only version >= 2 files; on version 1 the lint rules are warnings."""
    if version != 1:
        return findings
    return [replace(f, severity="warning") if f.rule in LINT_RULES else f for f in findings]


def finalize(findings: list[Finding], config: Config) -> list[Finding]:
    """Apply the config (disabled rules, strictness) and sort."""
    kept = [f for f in findings if not config.disabled(f.rule)]
    if config.strict:
        kept = [replace(f, severity="error") if f.severity == "warning" else f for f in kept]
    return sorted(kept, key=Finding.sort_key)


# ------------------------------------------------------------------------------------ many files

_worker_args: tuple[str, Config] | None = None


def _init_worker(root: str, config: Config) -> None:
    global _worker_args
    _worker_args = (root, config)


def _check_chunk(chunk: list[str]) -> list[Finding]:
    assert _worker_args is not None
    root, config = _worker_args
    out: list[Finding] = []
    for rel in chunk:
        out += check_leaf(root, rel, config)
    return out


def usable_cpus() -> int:
    """CPUs this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def check_many(root: str | Path, targets: list[str], config: Config, jobs: int | None = None) -> list[Finding]:
    """check_leaf over all targets, on several processes when there are many."""
    root = os.fspath(root)  # once, not per os.path.join
    jobs = jobs if jobs is not None else min(usable_cpus(), 8)
    if jobs <= 1 or len(targets) < PARALLEL_THRESHOLD or "fork" not in multiprocessing.get_all_start_methods():
        out: list[Finding] = []
        for rel in targets:
            out += check_leaf(root, rel, config)
        return out
    # Small chunks keep both workers busy to the end (a large last chunk leaves one core idle).
    size = max(16, len(targets) // (jobs * 16))
    chunks = [targets[i:i + size] for i in range(0, len(targets), size)]
    # fork: workers inherit the imported modules and loaded schemas; nothing to re-import.
    with multiprocessing.get_context("fork").Pool(jobs, _init_worker, (root, config)) as pool:
        results = pool.map(_check_chunk, chunks, chunksize=1)
    return [finding for part in results for finding in part]
