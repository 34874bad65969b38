#!/usr/bin/env python3
"""Turn examples/documents/<name>/ into git repositories at examples/taxonomy/.documents/<name>.

The commit is reproducible: fixed author, committer, dates and message, no user or system git config,
so the SHA is the same on every machine and the example knowledge leaf can pin it in
`document.commit`. `document.repo` in that leaf is `.documents/<name>`, a path RELATIVE TO THE
TAXONOMY ROOT (examples/taxonomy), which labtax resolves against the taxonomy root.

Usage: python examples/make_document_repo.py [--documents DIR] [--taxonomy DIR] [--dest DIR] [--check]
  --documents DIR  the folders to turn into repositories, one per folder (default: examples/documents)
  --taxonomy DIR   the taxonomy whose knowledge leaves pin them (default: examples/taxonomy)
  --dest DIR       where to create the repositories (default: <taxonomy>/.documents)
  --check          also verify that each SHA equals the one pinned by the taxonomy's knowledge leaves
                   (a leaf pinning a `.documents/<name>` that is not built is an error too)
Prints "<name> <sha>" per repository. Idempotent: an existing repository is rebuilt from scratch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCUMENTS = HERE / "documents"
TAXONOMY = HERE / "taxonomy"
IDENTITY = {
    "GIT_AUTHOR_NAME": "labtax examples",
    "GIT_AUTHOR_EMAIL": "examples@labtax.invalid",
    "GIT_COMMITTER_NAME": "labtax examples",
    "GIT_COMMITTER_EMAIL": "examples@labtax.invalid",
    "GIT_AUTHOR_DATE": "2025-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2025-01-01T00:00:00+00:00",
    # No user/system config may change the objects (autocrlf, hooks, signing, default branch).
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}
GIT_OPTIONS = ["-c", "core.autocrlf=false", "-c", "core.filemode=true", "-c", "commit.gpgsign=false",
               "-c", "init.defaultBranch=main", "-c", "core.hooksPath=" + os.devnull]


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **IDENTITY}
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    env.pop("GIT_INDEX_FILE", None)
    out = subprocess.run(["git", *GIT_OPTIONS, *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def build(source: Path, dest: Path) -> str:
    """A fresh repository at `dest` whose one commit holds the files of `source`; returns its SHA."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for path in sorted(source.rglob("*")):
        if path.is_file():
            target = dest / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
            target.chmod(0o644)  # the mode is part of the tree hash
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", f"Knowledge documents: {source.name}")
    return git(dest, "rev-parse", "HEAD")


def pinned_commits(taxonomy: Path = TAXONOMY) -> dict[str, str]:
    """`.documents/<name>` -> commit, as declared by the taxonomy's knowledge leaves."""
    import yaml

    pins: dict[str, str] = {}
    for leaf in (taxonomy / "knowledge").rglob("qna.yaml"):
        document = (yaml.safe_load(leaf.read_text(encoding="utf-8")) or {}).get("document") or {}
        if isinstance(document.get("repo"), str) and document["repo"].startswith(".documents/"):
            pins[document["repo"].split("/", 1)[1]] = str(document.get("commit"))
    return pins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=Path, default=DOCUMENTS)
    parser.add_argument("--taxonomy", type=Path, default=TAXONOMY)
    parser.add_argument("--dest", type=Path, default=None)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    dest = args.dest or args.taxonomy / ".documents"
    shas = {}
    for source in sorted(p for p in args.documents.iterdir() if p.is_dir()):
        shas[source.name] = build(source, dest / source.name)
        print(f"{source.name} {shas[source.name]}")
    if args.check:
        for name, commit in pinned_commits(args.taxonomy).items():
            if shas.get(name) != commit:
                print(f"error: a knowledge leaf pins .documents/{name} at {commit}, built {shas.get(name)}",
                      file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
