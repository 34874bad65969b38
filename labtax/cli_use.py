"""`labtax chat`: click glue only (registered on the group by cli.py); the session is labtax.use.chat."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from labtax.cli_options import LabtaxCommand, guarded
from labtax.errors import UsageError
from labtax.progress import note


def _say(chunk: str) -> None:
    click.echo(chunk, nl=False)
    sys.stdout.flush()


@click.command("chat", cls=LabtaxCommand)
@click.argument("model", metavar="MODEL")
@click.option("--message", "-m", "messages", multiple=True, metavar="TEXT",
              help="Answer TEXT and exit (repeat for several turns of one conversation). Without it and "
                   "with standard input not a terminal, the whole input is the one message.")
@click.option("--system", default=None, metavar="TEXT",
              help="The system turn ('' for none). Default: the one the model was trained with, when known.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), metavar="DIR",
              help="Take the system turn from the sets in DIR (a diff-generate output).")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="0: greedy decoding (the same answer every time).")
@click.option("--top-p", type=click.FloatRange(min=0, max=1), default=1.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of sampled answers.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: a GPU when there is one).")
@guarded
def chat_command(model: str, messages: tuple[str, ...], system: str | None, data_dir: Path | None,
                 max_new_tokens: int, temperature: float, top_p: float, seed: int, device: str | None) -> int:
    """Chat with MODEL: a checkpoint folder, a LoRA adapter folder, `embedded-small`, `embedded` or `tiny`.

    Interactive on a terminal (/reset, /system TEXT, /exit); with --message or piped input it
    answers and exits. Answers stream as they are generated, in the model's chat template, after the
    system turn the model was trained with.
    """
    from labtax.use.chat import ChatOptions, command, open_session  # the models: for this command only

    interactive = not messages and sys.stdin.isatty()
    if not messages and not interactive:
        piped = sys.stdin.read().strip()
        if not piped:
            raise UsageError("no message: standard input was empty", hint="pass --message TEXT")
        messages = (piped,)
    session = open_session(ChatOptions(model=model, system=system, data_dir=data_dir, max_new_tokens=max_new_tokens,
                                       temperature=temperature, top_p=top_p, seed=seed, device=device))
    note(f"labtax chat: {model} on {session.device}; system turn: {session.system.source}")
    if not interactive:
        for text in messages:
            session.reply(text, _say)
            click.echo()
        return 0
    click.echo("type a message; " + command(session, "/help"), err=True)  # type: ignore[operator]
    while True:
        try:
            line = input("you> ")
        except EOFError:
            click.echo()
            return 0
        if not line.strip():
            continue
        try:
            shown = command(session, line)
        except EOFError:
            return 0
        if shown is not None:
            click.echo(shown)
            continue
        session.reply(line, _say)
        click.echo()
