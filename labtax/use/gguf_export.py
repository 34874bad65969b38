"""`labtax export --format gguf`: a trained checkpoint as one GGUF file, written with the `gguf` package.

What llama.cpp, Ollama and LM Studio read: the weights under GGUF's tensor names, the architecture's
hyper-parameters, and the tokenizer (vocabulary, merges, special token ids, chat template) in the
metadata, so the file is the whole model. Covered: the architectures labtax trains (Llama, Mistral,
Qwen2), with a byte-level BPE tokenizer (SmolLM2, Qwen2, Llama 3); another tokenizer (SentencePiece)
is a usage error rather than a file that would tokenize wrongly.

Types: `f16` and `bf16` store every matrix in that type, `q8_0` in 8-bit blocks of 32 (a matrix whose
rows do not split into blocks stays f16, as llama.cpp's own converter does); norms and biases stay
f32. A Llama-family file stores the query and key projections with their rows interleaved per head,
the rotary layout llama.cpp computes with (transformers undoes it on loading); Qwen2 keeps them as
they are.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labtax.errors import UsageError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

GGUF_TYPES = ("f16", "bf16", "q8_0")
# transformers model_type -> GGUF architecture. Mistral is written as `llama`, as llama.cpp does: the
# same blocks (llama.cpp does not use a sliding window either). Not named "mistral" in general.name:
# transformers would then look for a GGUF architecture `mistral` that gguf-py 0.19 lacks, and fail.
ARCHITECTURES = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2"}
_Q8_BLOCK = 32


@dataclass(frozen=True)
class GgufFile:
    path: Path
    architecture: str
    tensor_type: str
    tensors: int
    bytes: int
    chat_template: bool


def _pre_tokenizer(model_type: str, tokenizer: PreTrainedTokenizerBase) -> str:
    """llama.cpp's name for the pre-tokenizer regex; it picks the split rules by this name."""
    if model_type == "qwen2":
        return "qwen2"
    vocab = tokenizer.get_vocab()
    if "<|begin_of_text|>" in vocab:
        return "llama-bpe"
    if "<|im_start|>" in vocab and len(vocab) <= 49152 + 64:  # SmolLM / SmolLM2
        return "smollm"
    return "gpt2"


def _vocabulary(tokenizer: PreTrainedTokenizerBase, vocab_size: int) -> tuple[list[str], list[int]]:
    """Every token by id up to the model's vocabulary size, with GGUF's token types (a model row
    no token uses is an unused placeholder)."""
    import gguf

    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = getattr(tokenizer, "added_tokens_decoder", {})
    tokens, types = [], []
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(int(gguf.TokenType.UNUSED))
        elif i in added:
            tokens.append(token)
            types.append(int(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED))
        else:
            tokens.append(token)
            types.append(int(gguf.TokenType.NORMAL))
    return tokens, types


def _check_tokenizer(tokenizer: PreTrainedTokenizerBase) -> None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise UsageError("GGUF export needs a fast (tokenizer.json) tokenizer")
    spec = json.loads(backend.to_str())
    model = spec.get("model") or {}
    pre = json.dumps(spec.get("pre_tokenizer") or {})
    if model.get("type") != "BPE" or model.get("byte_fallback") or "ByteLevel" not in pre:
        raise UsageError("GGUF export covers byte-level BPE tokenizers (SmolLM2, Qwen2, Llama 3); this model's "
                         f"is {model.get('type')}{' with byte fallback' if model.get('byte_fallback') else ''}",
                         hint="llama.cpp's convert_hf_to_gguf.py handles SentencePiece tokenizers")


def _interleave_rope(weight: np.ndarray, heads: int) -> np.ndarray:
    """Query/key rows from transformers' rotate-half layout to llama.cpp's interleaved pairs."""
    rows = weight.shape[0]
    return (weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def _encode(name: str, data: np.ndarray, tensor_type: str) -> tuple[np.ndarray, Any]:
    """The tensor in its stored type: (array, raw GGML type or None when the array's dtype says it)."""
    import gguf

    if data.ndim < 2 or not name.endswith(".weight"):
        return data.astype(np.float32), None
    if tensor_type == "q8_0" and data.shape[-1] % _Q8_BLOCK == 0:
        qtype = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(data.astype(np.float32), qtype), qtype
    if tensor_type == "bf16":
        qtype = gguf.GGMLQuantizationType.BF16
        return gguf.quants.quantize(data.astype(np.float32), qtype), qtype
    return data.astype(np.float16), None


def _exportable(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, tensor_type: str) -> str:
    """The model's `model_type` when labtax can write it as GGUF; a usage error otherwise."""
    if tensor_type not in GGUF_TYPES:
        raise UsageError(f"--type must be one of {', '.join(GGUF_TYPES)}")
    model_type = getattr(model.config, "model_type", "")
    if model_type not in ARCHITECTURES:
        raise UsageError(f"GGUF export covers {', '.join(sorted(ARCHITECTURES))} models; this one is {model_type!r}")
    _check_tokenizer(tokenizer)
    return str(model_type)


def _add_hyperparameters(writer: Any, config: Any, name: str, tensor_type: str) -> None:
    """The architecture's key-value metadata: sizes, heads, RoPE, norm epsilon, file type."""
    import gguf

    heads = int(config.num_attention_heads)
    file_type = {"f16": gguf.LlamaFileType.MOSTLY_F16, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[tensor_type]
    writer.add_name(name)
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.num_key_value_heads or heads))
    writer.add_rope_dimension_count(int(getattr(config, "head_dim", None) or config.hidden_size // heads))
    writer.add_rope_freq_base(float(getattr(config, "rope_theta", None)
                                    or (getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(int(config.vocab_size))
    writer.add_file_type(int(file_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _add_tokenizer(writer: Any, tokenizer: PreTrainedTokenizerBase, model_type: str, vocab_size: int) -> bool:
    """The vocabulary, merges, special ids and chat template; whether a chat template was written."""
    import gguf

    tokens, types = _vocabulary(tokenizer, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer(model_type, tokenizer))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    with tempfile.TemporaryDirectory() as files:
        # The gguf package reads merges, special ids and the chat template from tokenizer files.
        tokenizer.save_pretrained(files)
        special = gguf.SpecialVocab(files, load_merges=True, n_vocab=vocab_size)
        if getattr(tokenizer, "chat_template", None) and not special.chat_template:
            special.chat_template = tokenizer.chat_template
        special.add_to_gguf(writer)
    return bool(special.chat_template)


def _add_tensors(writer: Any, model: PreTrainedModel, arch: str, tensor_type: str) -> int:
    """Every weight under its GGUF name, encoded as `tensor_type`; the number written."""
    import gguf

    config = model.config
    heads = int(config.num_attention_heads)
    kv_heads = int(config.num_key_value_heads or heads)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA if arch == "llama" else gguf.MODEL_ARCH.QWEN2,
                                     int(config.num_hidden_layers))
    tied = bool(getattr(config, "tie_word_embeddings", False))
    count = 0
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # a tied head is the embedding matrix; GGUF stores it once (no output.weight)
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            if "rotary_emb" in hf_name:
                continue  # computed from rope_freq_base, not stored
            raise UsageError(f"GGUF export: no GGUF name for the tensor {hf_name!r}")
        data = tensor.detach().float().cpu().numpy()
        if arch == "llama" and hf_name.endswith(("q_proj.weight", "k_proj.weight")):
            data = _interleave_rope(data, heads if "q_proj" in hf_name else kv_heads)
        array, raw = _encode(gguf_name, data, tensor_type)
        if raw is None:
            writer.add_tensor(gguf_name, array)
        else:
            writer.add_tensor(gguf_name, array, raw_dtype=raw)
        count += 1
    return count


def write_gguf(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: Path, *,
               tensor_type: str = "f16", name: str = "labtax model") -> GgufFile:
    """Write `model` (a transformers causal LM) and its tokenizer as one GGUF file at `target`
    (atomically: a temporary file beside it, renamed when complete)."""
    import gguf

    model_type = _exportable(model, tokenizer, tensor_type)
    arch = ARCHITECTURES[model_type]
    if model_type == "mistral":
        name = re.sub("mistral", "m-istral", name, flags=re.IGNORECASE)  # see ARCHITECTURES
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), arch)
    _add_hyperparameters(writer, model.config, name, tensor_type)
    chat_template = _add_tokenizer(writer, tokenizer, model_type, int(model.config.vocab_size))
    count = _add_tensors(writer, model, arch, tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, target)
    return GgufFile(target, arch, tensor_type, count, target.stat().st_size, chat_template)
