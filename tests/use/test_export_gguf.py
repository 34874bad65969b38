"""`labtax export --format gguf|ollama`: the GGUF of a trained checkpoint loads back in transformers
(`gguf_file=`) with the same logits (f16: near-equal; q8_0: close), the same tokenizer and chat
template; Llama, Qwen2 and Mistral; the Modelfile names the GGUF, the stop tokens and the system turn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from use_fixtures import SYSTEM

from labtax.cli import cli
from labtax.models import load_model, load_tokenizer

PROMPTS = ["The river flows north past old mills.", "Who keeps records of every flood since the founding?"]
# Largest logit difference allowed, relative to the largest logit: f16 rounds each weight to 11 bits,
# q8_0 to 8 bits per block of 32 with an f16 scale.
TOLERANCE = {"f16": 2e-3, "bf16": 2e-2, "q8_0": 3e-2}
# Share of positions whose most likely next token is unchanged (q8_0 of embedded-small: 7 of 8 on the
# first prompt, measured; its weights were Q4_1 to begin with).
SAME_TOP = {"f16": 0.95, "bf16": 0.9, "q8_0": 0.75}


@pytest.fixture(autouse=True)
def gguf_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers parses a GGUF's metadata anew for the config, for the weights and for the tokenizer,
    and gguf-py's reader walks the 49,152-token vocabulary and its merges element by element (~4.5
    CPU-s a parse at one thread, whatever the model's size): a file a test reads back unchanged is
    parsed once, and the same reader object, the real one, serves each read (keyed by the file's
    size and mtime, so a rewritten file is parsed again). Likewise gguf-py's tensor-name table, a
    pure function of (architecture, blocks) that transformers rebuilds for every submodule of the
    model it loads (398 times for embedded-small's 30 blocks: ~6 CPU-s). And the values transformers
    decodes from the reader's fields, element by element, for the config and again for the weights
    (~1.8 CPU-s a walk of a 49k vocabulary): each element of the one reader is decoded once."""
    import functools

    import gguf
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    monkeypatch.setattr(gguf, "get_tensor_name_map", functools.lru_cache(maxsize=None)(gguf.get_tensor_name_map))
    parse = gguf_utils._gguf_parse_value
    decoded: dict[int, tuple[Any, Any]] = {}

    def parse_once(value: Any, data_type: Any) -> Any:
        # Keyed by the element's array object, which the memoized reader keeps (and the entry too, so
        # the id is never reused); an element has one type, the field's.
        hit = decoded.get(id(value))
        if hit is None:
            hit = decoded[id(value)] = (value, parse(value, data_type))
        return hit[1]

    monkeypatch.setattr(gguf_utils, "_gguf_parse_value", parse_once)
    real = gguf.GGUFReader
    parsed: dict[tuple[str, str, int, int], Any] = {}

    def reader(path: Any, mode: str = "r") -> Any:
        stat = os.stat(path)
        key = (os.fspath(path), mode, stat.st_size, stat.st_mtime_ns)
        if key not in parsed:
            parsed[key] = real(path, mode)
        return parsed[key]

    monkeypatch.setattr(gguf, "GGUFReader", reader)


def _logits(model: Any, tokenizer: Any) -> list[torch.Tensor]:
    with torch.inference_mode():
        return [model(**tokenizer(p, return_tensors="pt")).logits[0].float() for p in PROMPTS]


def _assert_round_trip(model_dir: str, gguf: Path, tensor_type: str, *, tokenizer_too: bool = False) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = load_tokenizer(model_dir)
    expected = _logits(load_model(model_dir, dtype=torch.float32), tokenizer)
    back = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    if tokenizer_too:  # 6 CPU-seconds: transformers rebuilds the BPE tokenizer from the metadata
        back_tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        for prompt in [*PROMPTS, "<|im_start|>user\nhi<|im_end|>"]:
            assert back_tokenizer(prompt)["input_ids"] == tokenizer(prompt)["input_ids"]
        assert back_tokenizer.chat_template == tokenizer.chat_template
        assert back_tokenizer.eos_token == tokenizer.eos_token
    for want, got in zip(expected, _logits(back, tokenizer)):
        scale = want.abs().max().item()
        assert (got - want).abs().max().item() <= TOLERANCE[tensor_type] * scale
        assert (got.argmax(-1) == want.argmax(-1)).float().mean().item() >= SAME_TOP[tensor_type]


def _export(model: str, tensor_type: str, output: Path) -> Path:
    """`labtax export --format gguf` of MODEL; the GGUF it wrote (named in its one line)."""
    result = CliRunner().invoke(cli, ["export", "--format", "gguf", "--model", model, "--type", tensor_type,
                                      "--output", str(output), "-q"])
    assert result.exit_code == 0, result.output
    (gguf,) = output.glob(f"*.{tensor_type}.gguf")
    assert f"{gguf} (llama, {tensor_type}, " in result.output
    return gguf


@pytest.fixture(scope="module")
def tiny_ollama(trained_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`labtax export --format ollama` of the trained tiny checkpoint, once for the file: (the output
    folder, the command's output). Its GGUF is what `--format gguf --type f16` writes (the same
    writer), so the f16 round trip reads that one back instead of exporting a second time (~1.5 CPU-s);
    `--format gguf` itself, and its one line, is embedded-small's q8_0 test below."""
    out = tmp_path_factory.mktemp("ollama")
    result = CliRunner().invoke(cli, ["export", "--format", "ollama", "--model", str(trained_tiny), "--type",
                                      "f16", "--output", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_the_gguf_of_a_trained_tiny_checkpoint_loads_back_with_its_logits(trained_tiny: Path,
                                                                          tiny_ollama: tuple[Path, str]) -> None:
    # f16 here; q8_0 through the same command is embedded-small's test below (each GGUF read back costs
    # ~5 CPU-s in transformers' metadata reader, whatever the model's size).
    (gguf,) = tiny_ollama[0].glob("*.f16.gguf")
    _assert_round_trip(str(trained_tiny), gguf, "f16", tokenizer_too=True)


@pytest.fixture(scope="module")
def small_vocabulary_tokenizer() -> Any:
    """SmolLM2's tokenizer retrained by the tokenizers library on the test prompts' words: the same
    byte-level BPE pipeline, special tokens and chat template, with 345 tokens instead of 49,152. The
    Qwen2 and Mistral round trips check the architectures' tensors and logits, not the vocabulary
    (test_the_gguf_of_a_trained_tiny_checkpoint... round-trips SmolLM2's own); reading a 49k
    vocabulary back was most of their cost (gguf-py walks it element by element, ~4.5 CPU-s)."""
    return load_tokenizer("tiny").train_new_from_iterator([" ".join(PROMPTS)] * 20, vocab_size=400)


@pytest.mark.parametrize("family", ["qwen2", "mistral"])
def test_qwen2_and_mistral_round_trip(tmp_path: Path, family: str, small_vocabulary_tokenizer: Any) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    from labtax.models import TINY_CONFIG
    from labtax.use.gguf_export import write_gguf

    tokenizer = small_vocabulary_tokenizer
    config = AutoConfig.for_model(family, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                  eos_token_id=tokenizer.eos_token_id, **TINY_CONFIG)
    torch.manual_seed(0)
    folder = tmp_path / family
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    written = write_gguf(load_model(str(folder), dtype=torch.float32), tokenizer, tmp_path / "out" / "m.f16.gguf",
                         tensor_type="f16", name=family)
    assert written.architecture == ("qwen2" if family == "qwen2" else "llama")
    _assert_round_trip(str(folder), written.path, "f16")


@pytest.mark.slow
def test_embedded_small_q8_0_round_trip(tmp_path: Path) -> None:
    gguf = _export("embedded-small", "q8_0", tmp_path)
    assert gguf.stat().st_size < 200e6  # 8-bit: about half of f16's 270 MB
    _assert_round_trip("embedded-small", gguf, "q8_0")


def test_ollama_export_writes_a_modelfile_naming_the_gguf_stops_and_system(tiny_ollama: tuple[Path, str]) -> None:
    folder, output = tiny_ollama
    (gguf,) = folder.glob("*.f16.gguf")
    text = (folder / "Modelfile").read_text()
    assert f"FROM ./{gguf.name}\n" in text
    assert 'PARAMETER stop "<|im_end|>"' in text  # the ChatML end of turn of SmolLM2's template
    assert f'SYSTEM """{SYSTEM}"""' in text
    assert "TEMPLATE" in text and "<|im_start|>{{ .Role }}" in text
    assert "ollama create NAME -f" in output


def test_export_needs_a_model_and_keeps_ilab(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["export", "--format", "gguf", "--output", str(tmp_path)])
    assert result.exit_code == 2 and "labtax: error: --format gguf needs --model" in result.output
    result = CliRunner().invoke(cli, ["export", "--format", "ilab", "--output", str(tmp_path)])
    assert result.exit_code == 2 and "--format ilab needs --data" in result.output
    result = CliRunner().invoke(cli, ["export", "--format", "gguf", "--model", str(tmp_path), "--output",
                                      str(tmp_path / "o")])
    assert result.exit_code == 2 and "Traceback" not in result.output
