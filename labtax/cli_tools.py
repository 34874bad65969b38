"""Two small commands, registered on the `labtax` group by cli.py: `labtax config` (the effective
settings and where each comes from) and `labtax export` (the sets in another trainer's format, a model as
GGUF or for Ollama).
Click glue only, like cli.py; the logic is in labtax.settings, labtax.mix.export and labtax.use.export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from labtax.cli_options import LabtaxCommand, guarded
from labtax.errors import UsageError
from labtax.settings import config_root, effective
from labtax.taxonomy.config import load_config

SHOWN = ("generate", "diff-generate", "train")


@click.command("config", cls=LabtaxCommand)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@guarded
def config_command(fmt: str) -> int:
    """Print the effective settings of validate, generate, diff-generate and train, and where each
    comes from: `.labtax.yaml` (validate:, generate:, train:) or labtax's default. Flags given to a
    command override both."""
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
@click.option("--format", "fmt", type=click.Choice(["ilab", "gguf", "ollama"]), default="ilab", show_default=True,
              help="ilab: the mixed sets of instructlab-sdg, which instructlab-training reads unchanged; gguf: "
                   "--model as one GGUF file (llama.cpp, LM Studio); ollama: the GGUF plus a Modelfile.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="ilab: the diff-generate output folder (phase1_knowledge.jsonl, phase2_skills.jsonl). "
                   "ollama: take the system turn from these sets (default: the one the checkpoint records).")
@click.option("--model", metavar="MODEL",
              help="gguf/ollama: a checkpoint folder, a LoRA adapter folder (merged), `embedded-small` ...")
@click.option("--type", "tensor_type", type=click.Choice(["f16", "bf16", "q8_0"]), default="q8_0",
              show_default=True, help="gguf/ollama: how the weight matrices are stored.")
@click.option("--output", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Where the files are written (ilab: knowledge_train_msgs.jsonl, skills_train_msgs.jsonl; "
                   "gguf: NAME.TYPE.gguf; ollama: also Modelfile).")
@click.option("--system-prompt", default=None, metavar="TEXT",
              help="ilab: the system message of every row (default: the sample's own, else 'You are a helpful "
                   "assistant.'). ollama: the Modelfile's SYSTEM (default: the one the model was trained with).")
@guarded
def export_command(data_dir: str | None, fmt: str, model: str | None, tensor_type: str, output: str,
                   system_prompt: str | None) -> int:
    """Write the training sets in another trainer's format (`--format ilab`), or a trained model in the
    formats people run locally (`--format gguf`, `--format ollama`)."""
    if fmt == "ilab":
        from labtax.mix.export import export_ilab  # the data contract: for this command only

        if not data_dir:
            raise UsageError("--format ilab needs --data DIR")
        for done in export_ilab(Path(data_dir), Path(output), system_prompt):
            click.echo(f"{done.target} ({done.rows} rows, from {done.source.name})")
        return 0
    if not model:
        raise UsageError(f"--format {fmt} needs --model MODEL (a checkpoint folder)")
    from labtax.use.export import export_model  # numpy: for this command only

    result = export_model(model, Path(output), fmt, tensor_type, system=system_prompt,
                          data_dir=Path(data_dir) if data_dir else None)
    click.echo(f"{result.gguf.path} ({result.gguf.architecture}, {result.gguf.tensor_type}, "
               f"{result.gguf.tensors} tensors, {result.gguf.bytes / 1e6:.1f} MB)")
    if result.modelfile is not None:
        click.echo(f"{result.modelfile} (system turn: {result.system_source}); "
                   f"then: ollama create NAME -f {result.modelfile}")
    return 0
