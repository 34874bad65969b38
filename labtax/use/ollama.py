"""`labtax export --format ollama`: the GGUF file plus a `Modelfile` that `ollama create NAME -f Modelfile` takes.

The Modelfile names the GGUF (FROM, a path relative to the Modelfile), the system turn the model was
trained with (SYSTEM), the tokens that end its turn (PARAMETER stop) and the sampling and context
parameters. Ollama speaks Go templates, not Jinja: for a ChatML model (SmolLM2, Qwen2) or a Llama 3
one the TEMPLATE is written out; for another template it is left out, and Ollama falls back on the
chat template stored in the GGUF's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from labtax.use.template import stop_strings
from labtax.util.atomic import atomic_write_text

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

MODELFILE = "Modelfile"

_CHATML = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
_LLAMA3 = """{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}<|start_header_id|>assistant<|end_header_id|>

"""


@dataclass(frozen=True)
class ModelfileSettings:
    system: str | None
    temperature: float = 0.7
    top_p: float = 0.9
    num_ctx: int = 2048


def go_template(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """The Ollama TEMPLATE equal to the model's chat template, for the families labtax trains."""
    if not tokenizer.chat_template:
        return None
    probe = str(tokenizer.apply_chat_template([{"role": "user", "content": "q"}], tokenize=False,
                                              add_generation_prompt=True))
    if "<|im_start|>user\nq<|im_end|>\n" in probe and probe.endswith("<|im_start|>assistant\n"):
        return _CHATML
    if "<|start_header_id|>user<|end_header_id|>\n\nq<|eot_id|>" in probe:
        return _LLAMA3
    return None


def _quote(text: str) -> str:
    # A Modelfile's triple-quoted value ends at the next triple quote; nothing inside can escape one.
    return '"""' + text.replace('"""', '" " "') + '"""'


def render_modelfile(gguf_name: str, tokenizer: PreTrainedTokenizerBase, settings: ModelfileSettings) -> str:
    lines = ["# Written by `labtax export --format ollama`. Use: ollama create NAME -f Modelfile", "",
             f"FROM ./{gguf_name}", ""]
    template = go_template(tokenizer)
    if template is not None:
        lines += [f"TEMPLATE {_quote(template)}", ""]
    else:
        lines += ["# No TEMPLATE: Ollama uses the chat template stored in the GGUF file.", ""]
    if settings.system:
        lines += [f"SYSTEM {_quote(settings.system)}", ""]
    lines += [f'PARAMETER stop "{stop}"' for stop in stop_strings(tokenizer)]
    lines += [f"PARAMETER temperature {settings.temperature:g}", f"PARAMETER top_p {settings.top_p:g}",
              f"PARAMETER num_ctx {settings.num_ctx}", ""]
    return "\n".join(lines)


def write_modelfile(folder: Path, gguf_name: str, tokenizer: PreTrainedTokenizerBase,
                    settings: ModelfileSettings) -> Path:
    target = folder / MODELFILE
    atomic_write_text(target, render_modelfile(gguf_name, tokenizer, settings))
    return target
