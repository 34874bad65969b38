"""Two small commands, registered on the `labtax` group by cli.py: `labtax config` (the effective
settings and where each comes from) and `labtax export` (the sets in another trainer's format).
Click glue only, like cli.py; the logic is in labtax.settings and labtax.sdg.export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from labtax.cli_options import LabtaxCommand, guarded

SHOWN = ("generate", "diff-generate", "train")


@click.command("config", cls=LabtaxCommand)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@guarded
def config_command(fmt: str) -> int:
    """Print the effective settings of validate, generate, diff-generate and train, and where each
    comes from: `.labtax.yaml` (validate:, generate:, train:) or labtax's default. Flags given to a
    command override both."""
    from labtax.settings import config_root, effective
    from labtax.taxonomy.config import load_config

    ctx = click.get_current_context()
    group = ctx.parent.command if ctx.parent else None
    root = config_root()
    validate = load_config(root)
    where = validate.source or "default"
    rows: list[tuple[str, Any, str]] = [
        (f"validate.{k}", getattr(validate, k), where if validate.source else "default")
        for k in ("strict", "disable", "max_file_bytes", "max_yaml_nodes")]
    if isinstance(group, click.Group):
        for name in SHOWN:
            if name in group.commands:
                rows += [(f"{name}.{key}", value, source)
                         for key, value, source in effective(group, ctx.parent or ctx, name)]
    if fmt == "json":
        import json

        click.echo(json.dumps({"root": str(root), "settings": [
            {"name": n, "value": list(v) if isinstance(v, tuple) else v, "source": s} for n, v, s in rows]},
            indent=2, default=str))
        return 0
    click.echo(f"# settings for {root} (flags override them at run time)")
    width = max(len(n) for n, _, _ in rows)
    for name, value, source in rows:
        shown = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        click.echo(f"{name:<{width}}  {shown if shown not in (None, '') else '-'}  ({source})")
    return 0


@click.command("export", cls=LabtaxCommand)
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="A diff-generate output folder (phase1_knowledge.jsonl, phase2_skills.jsonl).")
@click.option("--format", "fmt", type=click.Choice(["ilab"]), default="ilab", show_default=True,
              help="ilab: the mixed sets of instructlab-sdg, which instructlab-training reads unchanged.")
@click.option("--output", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Where knowledge_train_msgs.jsonl and skills_train_msgs.jsonl are written.")
@click.option("--system-prompt", default=None, metavar="TEXT",
              help="The system message of every row (the one your model family trains with); default: "
                   "the sample's own, else 'You are a helpful assistant.'")
@guarded
def export_command(data_dir: str, fmt: str, output: str, system_prompt: str | None) -> int:
    """Write the training sets in another trainer's format (InstructLab's: `--format ilab`)."""
    from labtax.sdg.export import export_ilab

    for done in export_ilab(Path(data_dir), Path(output), system_prompt):
        click.echo(f"{done.target} ({done.rows} rows, from {done.source.name})")
    return 0
