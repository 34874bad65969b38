"""`labtax chat`: talk to a model (a checkpoint or adapter folder, `embedded-small`, `embedded`, `tiny`).

The conversation is rendered with the model's own chat template, begins with the system turn the
model was trained with (provenance.py) and keeps its history; the answer is streamed token by token
through transformers' streamer and ends at the template's end-of-turn token (template.py). The
dtype and thread count are the transformers teacher's (compute.choose_dtype, models.choose_threads),
so a chat runs as fast as generation does on the same machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labtax import compute, models
from labtax.errors import UsageError
from labtax.models import render_chat
from labtax.use.provenance import SystemTurn, system_turn
from labtax.use.template import stop_token_ids

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class ChatOptions:
    model: str
    system: str | None = None  # --system: overrides the training data's system turn ("" for none)
    data_dir: Path | None = None  # --data: take the system turn from these sets
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0: greedy (the same answer every time)
    top_p: float = 1.0
    seed: int = 0
    device: str | None = None  # None: a GPU when there is one, else the CPU
    threads: int | None = None


@dataclass
class ChatSession:
    """One conversation: the loaded model, the system turn and the history of turns."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    system: SystemTurn
    options: ChatOptions
    device: str
    stop_ids: list[int]
    history: list[dict[str, str]] = field(default_factory=list)

    def messages(self) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system.text}] if self.system.text else []
        return head + self.history

    def reset(self) -> None:
        """Forget the history (the system turn stays)."""
        self.history.clear()

    def set_system(self, text: str) -> None:
        """A new system turn ("" for none); the history is kept."""
        self.system = SystemTurn(text or None, "/system")

    def reply(self, text: str, on_text: Callable[[str], None] | None = None) -> str:
        """Answer one user turn, streaming the text as it is decoded; the answer joins the history."""
        import torch
        from transformers import TextStreamer

        messages = [*self.messages(), {"role": "user", "content": text}]
        prompt = render_chat(self.tokenizer, messages, add_generation_prompt=True)
        # The template already holds the special tokens (a BOS among them when it wants one).
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)
        parts: list[str] = []

        class _Stream(TextStreamer):
            def on_finalized_text(self, chunk: str, stream_end: bool = False) -> None:
                parts.append(chunk)
                if on_text is not None and chunk:
                    on_text(chunk)

        sampling: dict[str, Any] = ({"do_sample": True, "temperature": self.options.temperature,
                                     "top_p": self.options.top_p} if self.options.temperature > 0
                                    else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None})
        torch.manual_seed(self.options.seed + len(self.history))
        model: Any = self.model  # generate() is typed loosely by transformers
        with torch.inference_mode():
            model.generate(
                **inputs, max_new_tokens=self.options.max_new_tokens, eos_token_id=self.stop_ids or None,
                pad_token_id=self.tokenizer.pad_token_id or (self.stop_ids or [0])[0],
                streamer=_Stream(self.tokenizer, skip_prompt=True, skip_special_tokens=True), **sampling)
        answer = "".join(parts).strip()
        self.history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
        return answer


def open_session(options: ChatOptions) -> ChatSession:
    """Load the model and tokenizer the way the transformers teacher does, and the system turn."""
    import torch

    threads = options.threads or models.choose_threads()
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = models.load_tokenizer(options.model)
    if not tokenizer.chat_template:
        raise UsageError(f"{options.model}: its tokenizer has no chat template, so there is no chat form to use",
                         hint="an instruct model's folder has one in tokenizer_config.json or chat_template.jinja")
    # The transformers teacher's choice (labtax/compute.py): bf16 where the CPU has bf16 matrix
    # hardware or on a GPU, else what a short measurement on this machine found fastest (cached).
    # Memory counts too: a model whose fp32 weights exceed the budget keeps bf16 weights and computes in fp32.
    choice = compute.choose_for(options.model, device, threads, cache=choice_cache(options.model))
    model = compute.load(options.model, choice, threads=threads, device=device)
    ends = getattr(model.generation_config, "eos_token_id", None)
    stops = stop_token_ids(tokenizer) + [int(t) for t in ([ends] if isinstance(ends, int) else list(ends or []))]
    turn = system_turn(options.model, explicit=options.system, data_dir=options.data_dir)
    return ChatSession(model, tokenizer, turn, options, device, list(dict.fromkeys(stops)))


CHOICES_DIR = "choices"  # under labtax's cache: one dtype-choice file per model content


def choice_cache(model: str) -> Path:
    """Where chat caches its dtype measurement: under labtax's cache ($LABTAX_CACHE), named by the
    model folder's content, never inside the folder (a checkpoint may be read-only, shared, or
    checked into a model registry, and a file chat adds there would change what is copied on)."""
    folder = models.weights_dir(model)
    if folder is None:  # tiny: no folder, the machine-wide file
        return compute.choice_file(None)
    return models.cache_dir() / CHOICES_DIR / f"{content_key(folder)}.json"


def content_key(folder: Path) -> str:
    """A model folder's identity without reading its weights: config.json and each safetensors
    file's header (its tensor names, shapes, dtypes and offsets) and size. The same weights copied
    elsewhere share the key; a retrained checkpoint of the same shape has its own (the choice
    depends on the shape alone, so sharing across retrains would be right but unprovable here)."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.name == "config.json":
            digest.update(b"config.json\0" + path.read_bytes())
        elif path.suffix == ".safetensors":
            digest.update(path.name.encode() + b"\0" + _safetensors_header(path) + str(path.stat().st_size).encode())
    return digest.hexdigest()[:24]


def _safetensors_header(path: Path) -> bytes:
    """The JSON header of a safetensors file (its first 8 bytes give the header's length)."""
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        return f.read(min(size, 100 << 20))  # the format's own cap on a header


HELP = "/reset forgets the conversation, /system TEXT sets the system turn (/system alone shows it), /exit ends"


def command(session: ChatSession, line: str) -> str | None:
    """Run a slash command; returns what to print, or None when `line` is not a command.
    Raises EOFError for /exit."""
    word, _, rest = line.strip().partition(" ")
    if word in ("/exit", "/quit"):
        raise EOFError
    if word == "/reset":
        session.reset()
        return "(conversation reset)"
    if word == "/system":
        if rest.strip():
            session.set_system(rest.strip())
            return "(system turn set)"
        return f"system: {session.system.text or '(none)'} [{session.system.source}]"
    if word in ("/help", "/?"):
        return HELP
    if word.startswith("/"):
        return f"unknown command {word}: {HELP}"
    return None
