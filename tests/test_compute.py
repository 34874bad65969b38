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
