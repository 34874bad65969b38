"""What `labtax eval` scores, as token ids: each example's prompt and its scored completion.

The prompt is the chat template of the turns before the answer *with* the generation prompt; the
scored completion is the reference answer plus the template's end-of-turn marker (what the model must
emit to stop), tokenized separately from the prompt exactly as the model would produce them after
the prompt. A prompt several examples share (the options of a multiple-choice item) is rendered and
tokenized once, and `run_eval` encodes once for both models when their tokenizers are the same
(`tokenizer_fingerprint`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from labtax.eval.data import Example
from labtax.models import render_chat

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

DEFAULT_MAX_LEN = 4096


@dataclass(frozen=True)
class Encoded:
    prompt_ids: list[int]
    target_ids: list[int]

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.target_ids)


def completion_text(tokenizer: PreTrainedTokenizerBase, example: Example,
                    prompt: str | None = None) -> tuple[str, str]:
    """(prompt text, completion text) for an example under the tokenizer's chat template (`prompt`:
    the example's prompt already rendered)."""
    messages = example.prompt_messages()
    if prompt is None:
        prompt = render_chat(tokenizer, messages, add_generation_prompt=True)
    full = render_chat(tokenizer, [*messages, {"role": "assistant", "content": example.answer}])
    if full.startswith(prompt):
        completion = full[len(prompt):]
        if completion.startswith(example.answer):
            # Keep the end-of-turn marker, drop the template's separator after it ("\n"): the
            # model is judged on saying the answer and stopping, not on what follows the turn.
            completion = example.answer + completion[len(example.answer):].rstrip()
        else:
            completion = completion.rstrip()
        return prompt, completion
    # A template that renders the prompt differently once an answer follows: fall back to EOS.
    return prompt, example.answer + (tokenizer.eos_token or "")


def encode(
    tokenizer: PreTrainedTokenizerBase, example: Example, *, max_len: int = DEFAULT_MAX_LEN,
    prompts: dict[tuple[tuple[str, str], ...], tuple[str, list[int]]] | None = None,
) -> Encoded:
    """Token ids of the prompt and the scored completion; over-long prompts lose their start.
    `prompts`: rendered and tokenized prompts by their turns, filled and reused."""
    cached = prompts.get(example.prompt) if prompts is not None else None
    if cached is None:
        text = render_chat(tokenizer, example.prompt_messages(), add_generation_prompt=True)
        cached = (text, list(tokenizer(text, add_special_tokens=False)["input_ids"]))
        if prompts is not None:
            prompts[example.prompt] = cached
    _, completion = completion_text(tokenizer, example, cached[0])
    prompt_ids = list(cached[1])
    target_ids = list(tokenizer(completion, add_special_tokens=False)["input_ids"])
    if not prompt_ids:  # the first completion token needs a position that predicts it
        prompt_ids = [tokenizer.bos_token_id if tokenizer.bos_token_id is not None else target_ids.pop(0)]
    if len(prompt_ids) + len(target_ids) > max_len:
        target_ids = target_ids[: max_len - 1]
        prompt_ids = prompt_ids[-(max_len - len(target_ids)):]
    return Encoded(prompt_ids, target_ids)


def encode_all(tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example], *,
               max_len: int = DEFAULT_MAX_LEN) -> list[Encoded]:
    """`encode` of every example, each distinct prompt rendered and tokenized once."""
    prompts: dict[tuple[tuple[str, str], ...], tuple[str, list[int]]] = {}
    return [encode(tokenizer, ex, max_len=max_len, prompts=prompts) for ex in examples]


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """A digest of everything `encode` reads from a tokenizer (its vocabulary, merges and normaliser,
    the chat template, the special tokens), or None for a tokenizer without a serialisable backend:
    two tokenizers with one fingerprint encode every example alike."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    parts = [type(tokenizer).__name__, backend.to_str(), str(tokenizer.chat_template),
             str(tokenizer.bos_token_id), str(tokenizer.eos_token)]
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()
