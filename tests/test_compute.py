"""The compute dtype and batch width chosen on the running machine (labtax/compute.py): from the
CPU's flags (fake /proc/cpuinfo files) and a measurement (a fake one, never timed here), cached."""

from __future__ import annotations

from pathlib import Path

import pytest

from labtax import compute
from labtax.errors import UsageError

AVX2 = "fpu vme sse sse2 avx f16c avx2 fma"
AMX = AVX2 + " avx512f avx512_bf16 amx_bf16 amx_tile"


def cpuinfo(tmp_path: Path, flags: str, model: str = "Test CPU") -> compute.CpuInfo:
    path = tmp_path / f"cpuinfo-{len(flags)}"
    path.write_text(f"processor\t: 0\nmodel name\t: {model}\nflags\t\t: {flags}\n\n"
                    f"processor\t: 1\nmodel name\t: {model}\nflags\t\t: {flags}\n")
    return compute.read_cpuinfo(path)


class FakeMeasure:
    def __init__(self, gflops: dict[str, float]) -> None:
        self.gflops, self.calls = gflops, 0

    def __call__(self, hidden: int, intermediate: int) -> dict[str, float]:
        self.calls += 1
        return dict(self.gflops)


@pytest.fixture(autouse=True)
def no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(compute.ENV, raising=False)


def test_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpu = cpuinfo(tmp_path, AMX, "Xeon")
    assert cpu.model == "Xeon" and "amx_bf16" in cpu.flags and cpu.bf16_matrix
    assert not cpuinfo(tmp_path, AVX2).bf16_matrix
    assert compute.read_cpuinfo(tmp_path / "absent") == compute.CpuInfo("unknown", frozenset())


def test_bf16_matrix_hardware_gets_bf16_without_measuring(tmp_path: Path) -> None:
    measure = FakeMeasure({"float32": 90.0, "bfloat16": 10.0})
    choice = compute.choose_dtype("cpu", hidden=64, intermediate=176, threads=1, cpu=cpuinfo(tmp_path, AMX),
                                  cache=tmp_path / "c.json", measure=measure)
    assert choice.dtype == "bfloat16" and "amx_bf16" in choice.reason and measure.calls == 0


def test_avx2_measures_once_and_the_answer_is_cached(tmp_path: Path) -> None:
    cpu, cache = cpuinfo(tmp_path, AVX2), tmp_path / "c.json"
    measure = FakeMeasure({"float32": 77.0, "bfloat16": 10.6})
    first = compute.choose_dtype("cpu", hidden=64, intermediate=176, threads=1, cpu=cpu, cache=cache, measure=measure)
    assert first.dtype == "float32" and first.gflops == {"float32": 77.0, "bfloat16": 10.6}
    again = compute.choose_dtype("cpu", hidden=64, intermediate=176, threads=1, cpu=cpu, cache=cache, measure=measure)
    assert again.dtype == "float32" and "earlier" in again.reason and measure.calls == 1
    # Another thread count is another measurement (the cache key holds it).
    compute.choose_dtype("cpu", hidden=64, intermediate=176, threads=2, cpu=cpu, cache=cache, measure=measure)
    assert measure.calls == 2


def test_a_cpu_where_bf16_measures_faster_gets_bf16(tmp_path: Path) -> None:
    measure = FakeMeasure({"float32": 40.0, "bfloat16": 95.0})
    choice = compute.choose_dtype("cpu", hidden=64, intermediate=176, threads=1, cpu=cpuinfo(tmp_path, AVX2),
                                  cache=tmp_path / "c.json", measure=measure)
    assert choice.dtype == "bfloat16" and "measured" in choice.reason


def test_the_flag_and_the_variable_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    measure = FakeMeasure({"float32": 77.0, "bfloat16": 10.0})
    amx = cpuinfo(tmp_path, AMX)
    assert compute.choose_dtype("cpu", hidden=8, intermediate=8, threads=1, cpu=amx, requested="fp32",
                                measure=measure).dtype == "float32"
    monkeypatch.setenv(compute.ENV, "bf16")
    chosen = compute.choose_dtype("cpu", hidden=8, intermediate=8, threads=1, cpu=cpuinfo(tmp_path, AVX2),
                                  measure=measure)
    assert chosen.dtype == "bfloat16" and compute.ENV in chosen.reason and measure.calls == 0
    assert compute.choose_dtype("cuda", hidden=8, intermediate=8, threads=1, requested="auto").dtype == "bfloat16"
    with pytest.raises(UsageError, match="not one of"):
        compute.normalise_dtype("int4")


def test_a_corrupt_cache_file_is_measured_again(tmp_path: Path) -> None:
    cache = tmp_path / "c.json"
    cache.write_text("{not json")
    measure = FakeMeasure({"float32": 77.0, "bfloat16": 10.0})
    assert compute.choose_dtype("cpu", hidden=8, intermediate=8, threads=1, cpu=cpuinfo(tmp_path, AVX2),
                                cache=cache, measure=measure).dtype == "float32"
    assert measure.calls == 1 and compute.recall(cache, next(iter(compute._read(cache))))["dtype"] == "float32"


def test_the_width_with_the_most_tokens_per_second(tmp_path: Path) -> None:
    # Step seconds grow slower than the width up to 32, then linearly: 32 wins, 64 is not measured twice.
    steps = {4: 0.5, 8: 0.55, 16: 0.7, 32: 1.0, 64: 2.1}
    seen: list[int] = []

    def step(width: int) -> float:
        seen.append(width)
        return steps[width]

    width, rates = compute.choose_width(step)
    assert width == 32 and seen == [4, 8, 16, 32, 64] and rates[32] == 32.0
    # Doubling that gains under 10% is not worth the memory: stop at the narrower width.
    width, _ = compute.choose_width(lambda w: {4: 1.0, 8: 1.9, 16: 3.7}.get(w, 99.0))
    assert width == 4


def test_the_dry_run_estimate_reads_the_rates_of_this_machine(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABTAX_CACHE", str(tmp_path))
    assert compute.estimate_seconds("model-a", 100, 16000) is None
    compute.remember_rate("model-a", decode_tokens_per_s=40.0)
    seconds, basis = compute.estimate_seconds("model-a", 100, 16000) or (0.0, "")
    assert seconds == 400.0 and "prompts not counted" in basis
    compute.remember_rate("model-a", seconds_per_request=2.5)
    assert (compute.estimate_seconds("model-a", 100, 16000) or (0.0, ""))[0] == 250.0
    assert compute.estimate_seconds("model-b", 100, 16000) is None


GIB = 1 << 30


def test_memory_rules_out_fp32_weights_that_do_not_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # This AVX2 machine's figures: fp32 and bf16-fp32 about equal, bf16 five times slower.
    measure = FakeMeasure({"float32": 48.0, compute.MIXED: 47.0, "bfloat16": 10.0})
    avx2, cache = cpuinfo(tmp_path, AVX2), tmp_path / "c.json"

    def choose(weights: int) -> compute.DtypeChoice:
        return compute.choose_dtype("cpu", hidden=64, intermediate=176, threads=1, cpu=avx2, cache=cache,
                                    measure=measure, weights=weights)

    small = choose(135_000_000)  # the 135M model: 0.5 GB in fp32 fits, fp32 stays
    assert small.name == "fp32" and small.storage == ""
    big = choose(1_540_000_000)  # the 1.5B teacher: 6.2 GB in fp32 does not fit 5 GiB
    assert big.name == compute.MIXED and big.dtype == "float32" and big.storage == "bfloat16"
    assert "exceed the 5 GiB budget" in big.reason and "earlier" in big.reason and measure.calls == 1
    monkeypatch.setenv(compute.RSS_ENV, "12")  # a user with memory to spare gets fp32 weights back
    assert choose(1_540_000_000).name == "fp32"
    monkeypatch.setenv(compute.RSS_ENV, "2")  # nothing fits: the least memory, the faster of the two
    tight = choose(1_540_000_000)
    assert tight.name == compute.MIXED and "no dtype fits" in tight.reason
    # Where bf16 computes faster (but no bf16 matrix flags), bf16 weights with bf16 compute win.
    monkeypatch.delenv(compute.RSS_ENV)
    fast_bf16 = compute.choose_dtype("cpu", hidden=64, intermediate=176, threads=4, cpu=avx2, cache=cache,
                                     measure=FakeMeasure({"float32": 40.0, compute.MIXED: 38.0, "bfloat16": 95.0}),
                                     weights=1_540_000_000)
    assert fast_bf16.name == "bf16" and fast_bf16.storage == ""
    # AMX: bf16 without measuring, whatever the size.
    assert compute.choose_dtype("cpu", hidden=64, intermediate=176, threads=1, cpu=cpuinfo(tmp_path, AMX),
                                measure=measure, weights=1_540_000_000).name == "bf16"


def test_bf16_fp32_can_be_asked_for() -> None:
    choice = compute.choose_dtype("cpu", hidden=8, intermediate=8, threads=1, requested=compute.MIXED)
    assert (choice.dtype, choice.storage, choice.name) == ("float32", "bfloat16", compute.MIXED)


def test_weight_count_reads_safetensors_headers(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(3, 4, dtype=torch.bfloat16), "b": torch.zeros(5)}, str(tmp_path / "m.safetensors"))
    (tmp_path / "broken.safetensors").write_bytes(b"\x01")
    assert compute.weight_count(tmp_path) == 17 and compute.weight_count(None) == 0


def test_widened_linear_equals_the_fp32_matmul_of_the_bf16_weights() -> None:
    import torch

    torch.manual_seed(0)
    w = torch.randn(1000, 96).bfloat16()  # 1000 rows: several chunks when the chunk is small
    bias = torch.randn(1000).bfloat16()
    x = torch.randn(2, 3, 96)
    expected = torch.nn.functional.linear(x, w.float(), bias.float())
    old = compute.CHUNK_BYTES
    try:
        compute.CHUNK_BYTES = 96 * 4 * 7  # 7 rows a chunk: 143 chunks, the last one short
        assert torch.allclose(compute.widened_linear(x, w, bias), expected, atol=1e-5)
    finally:
        compute.CHUNK_BYTES = old
    assert torch.allclose(compute.widened_linear(x, w, None), expected - bias.float(), atol=1e-4)
    # The reused buffer first made in inference mode (a generation) still serves outside it (a chat
    # measuring in the same thread), and a grad-enabled call builds no graph through the buffer.
    with torch.inference_mode():
        compute.widened_linear(torch.randn(1, 200), torch.randn(5000, 200).bfloat16(), None)
    out = compute.widened_linear(x, w.requires_grad_(), None)
    assert not out.requires_grad and torch.allclose(out, expected - bias.float(), atol=1e-4)


def test_a_widened_model_computes_like_fp32_with_bf16_weights_and_keeps_one_copy() -> None:
    import torch

    from labtax import models

    reference = models.build_tiny_model(seed=3)
    # The fp32 model whose weights are the bf16 ones, exactly.
    for p in reference.parameters():
        p.data = p.data.bfloat16().float()
    widened = compute.widen_compute(models.build_tiny_model(seed=3).to(torch.bfloat16), torch.float32)
    linears = [m for m in widened.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    assert compute.compute_dtype(widened) == torch.float32
    rotary = [b for n, b in widened.named_buffers() if n.endswith("inv_freq")]
    assert rotary and all(b.dtype == torch.float32 for b in rotary)
    ids = torch.tensor([[5, 17, 300, 42, 7, 99, 1000, 3] * 8])
    with torch.inference_mode():
        want, got = reference(input_ids=ids).logits, widened(input_ids=ids).logits
    assert got.dtype == torch.float32 and torch.allclose(got, want, atol=1e-4)
    weight_bytes = sum(p.numel() * p.element_size() for p in widened.parameters())
    fp32_bytes = sum(p.numel() * 4 for p in widened.parameters())
    assert weight_bytes < 0.6 * fp32_bytes  # the Linears and embeddings stay bf16


def test_a_widened_qwen2_with_biases_and_tied_embeddings_computes_like_fp32() -> None:
    """The embedded teacher's architecture (Qwen2: q/k/v biases, the head tied to the embeddings),
    built small from a config: the tied weight stays one bf16 tensor and the logits match fp32."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=512, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                         max_position_embeddings=256)
    torch.manual_seed(1)
    reference = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(torch.randn_like(p) * 0.02)  # biases are zeros at init: make them count
    widened = Qwen2ForCausalLM(config).eval()
    widened.load_state_dict(reference.state_dict())
    widened = compute.widen_compute(widened.to(torch.bfloat16), torch.float32)
    for p in reference.parameters():
        p.data = p.data.bfloat16().float()
    assert widened.lm_head.weight is widened.model.embed_tokens.weight
    assert widened.lm_head.weight.dtype == torch.bfloat16
    assert widened.model.layers[0].self_attn.q_proj.bias.dtype == torch.float32
    ids = torch.arange(3, 200).remainder(512)[None, :]
    with torch.inference_mode():
        want, got = reference(input_ids=ids).logits, widened(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-4)


def test_the_measurement_gives_every_mode_its_best_of_interleaved_rounds() -> None:
    # Real matmuls at a tiny shape: every mode measured, none zero (the rounds take turns, so one
    # unlucky window on a shared machine no longer decides a mode's figure alone).
    gflops = compute.measure_matmul(64, 128, rows=4, seconds=0.001, rounds=2)
    assert set(gflops) == {"float32", "bfloat16", "bf16-fp32"}
    assert all(value > 0 for value in gflops.values())
