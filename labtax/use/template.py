"""What a model's chat template says beyond rendering: the token that ends an assistant turn.

Found by rendering a short conversation and reading what the template puts right after the
assistant's words (`<|im_end|>` for ChatML models such as SmolLM2 and Qwen2, `<|eot_id|>` for
Llama 3, `</s>` for Mistral). A chat stops there, and an Ollama Modelfile lists it as a stop token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_PROBE = "labtax-probe-answer"


def stop_strings(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The special tokens that end an assistant turn: the template's end of turn, then end of sequence."""
    found: list[str] = []
    specials = set(tokenizer.all_special_tokens) | {
        t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if getattr(t, "special", False)}
    if tokenizer.chat_template:
        text = str(tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _PROBE}], tokenize=False))
        after = text.split(_PROBE, 1)[1] if _PROBE in text else ""
        # The longest special token the rest starts with (after optional whitespace).
        rest = after.lstrip()
        for token in sorted(specials, key=len, reverse=True):
            if token and rest.startswith(token):
                found.append(token)
                break
    eos = tokenizer.eos_token
    if isinstance(eos, str) and eos and eos not in found:
        found.append(eos)
    return found


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """`stop_strings` as token ids (each is one special token)."""
    ids = []
    for text in stop_strings(tokenizer):
        tid = tokenizer.convert_tokens_to_ids(text)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid not in ids:
            ids.append(tid)
    return ids
