"""How an in-process model computes on the machine that runs: its dtype, threads and batch width.

The right dtype depends on the CPU, not on the model: with bf16 matrix hardware (AMX-BF16 or
AVX512-BF16 in /proc/cpuinfo) a bf16 matmul is several times faster than fp32 and halves the
weights' memory (measured on a Xeon with AMX: the embedded teacher 4.5x faster in bf16); without it
(AVX2 only) torch emulates bf16 and fp32 wins (measured on a 2-core AVX2 EPYC, one thread: a
1536x8960 matmul at 77 GFLOPS in fp32 against 10.6 in bf16). Machines differ between users and CI
runners, so:

- bf16 where the CPU has bf16 matrix hardware, fp32 where it has neither AVX512 nor AMX and a short
  measurement (a few matmuls of the model's own MLP shape, well under a second) does not show bf16
  faster; the measurement is what decides on any other CPU.
- The decision and what it measured are cached in a JSON file (beside the converted weights for the
  embedded teacher), keyed by the CPU's model name and flags, torch's version and the thread count,
  so the measurement runs once per machine.
- `$LABTAX_TEACHER_DTYPE` (fp32|bf16) or `--dtype` overrides it; a GPU always gets bf16.

Threads come from `labtax.models.choose_threads()` (the cores other work leaves free), for the
teacher, `eval` and `train` alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labtax.errors import UsageError
from labtax.models import cache_dir

CPUINFO = Path("/proc/cpuinfo")
BF16_MATRIX_FLAGS = ("amx_bf16", "avx512_bf16")
DTYPES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16",
          "float16": "float16"}
ENV = "LABTAX_TEACHER_DTYPE"
CHOICE_FILE = "labtax-compute.json"


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str]

    @property
    def bf16_matrix(self) -> bool:
        """bf16 matrix hardware: AMX tiles or AVX512-BF16 dot products."""
        return any(f in self.flags for f in BF16_MATRIX_FLAGS)

    def key(self, threads: int) -> str:
        """The cache key: a measurement holds for this CPU, this torch and this thread count."""
        import torch

        text = f"{self.model}|{' '.join(sorted(self.flags))}|{torch.__version__}|{threads}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_cpuinfo(path: Path = CPUINFO) -> CpuInfo:
    """The CPU's model name and flags (empty where /proc/cpuinfo is absent: not Linux)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return CpuInfo("unknown", frozenset())
    model, flags = "unknown", frozenset[str]()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        name = name.strip()
        if name == "model name" and model == "unknown":
            model = value.strip()
        elif name == "flags" and not flags:
            flags = frozenset(value.split())
    return CpuInfo(model, flags)


@dataclass(frozen=True)
class DtypeChoice:
    dtype: str  # "float32" or "bfloat16" (torch's names)
    reason: str  # one line for logs: why this dtype
    gflops: dict[str, float] = field(default_factory=dict)  # what the measurement found, when one ran

    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)


Measure = Callable[[int, int], dict[str, float]]


def measure_matmul(hidden: int, intermediate: int, rows: int = 32, seconds: float = 0.15) -> dict[str, float]:
    """GFLOPS of a [rows x hidden] @ [hidden x intermediate] matmul in fp32 and in bf16 on this
    thread count: the model's MLP shape at a decode batch, the work that dominates generation."""
    import torch

    out: dict[str, float] = {}
    for dtype in ("float32", "bfloat16"):
        t = getattr(torch, dtype)
        a = torch.randn(rows, hidden, dtype=t)
        w = torch.randn(intermediate, hidden, dtype=t)
        torch.nn.functional.linear(a, w)  # warm-up: first-call dispatch and allocation
        n, started = 0, time.perf_counter()
        while True:
            torch.nn.functional.linear(a, w)
            n += 1
            elapsed = time.perf_counter() - started
            if elapsed >= seconds or n >= 200:
                break
        out[dtype] = round(2 * rows * hidden * intermediate * n / elapsed / 1e9, 2)
    return out


def choice_file(model_dir: Path | None) -> Path:
    """Where a machine's choices are cached: beside the converted weights when there are some."""
    if model_dir is not None and os.access(model_dir, os.W_OK):
        return model_dir / CHOICE_FILE

    return cache_dir() / CHOICE_FILE


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remember(path: Path, key: str, **values: Any) -> None:
    """Merge `values` into the cached entry `key` (atomic replace; a lost race loses nothing real)."""
    data = _read(path)
    old = data.get(key)
    entry: dict[str, Any] = old if isinstance(old, dict) else {}
    data[key] = {**entry, **values}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache: measured again next time, nothing else lost


def recall(path: Path, key: str) -> dict[str, Any]:
    entry = _read(path).get(key)
    return entry if isinstance(entry, dict) else {}


def normalise_dtype(name: str | None) -> str | None:
    """fp32|float32|bf16|bfloat16|fp16|float16 -> torch's name; None or "auto" -> None (choose)."""
    if name is None or name in ("", "auto"):
        return None
    if name not in DTYPES:
        raise UsageError(f"dtype {name!r} is not one of auto, fp32, bf16, fp16", hint=f"check --dtype or ${ENV}")
    return DTYPES[name]


def choose_dtype(device: str, *, hidden: int, intermediate: int, threads: int, requested: str | None = None,
                 cache: Path | None = None, cpu: CpuInfo | None = None,
                 measure: Measure | None = None) -> DtypeChoice:
    """The compute dtype for a model with this MLP shape on `device` (see the module docstring)."""
    wanted = normalise_dtype(requested) or normalise_dtype(os.environ.get(ENV))
    if wanted is not None:
        return DtypeChoice(wanted, "asked for" + (" (--dtype)" if normalise_dtype(requested) else f" (${ENV})"))
    if device != "cpu":
        return DtypeChoice("bfloat16", f"{device}: bf16 compute")
    cpu = cpu or read_cpuinfo()
    if cpu.bf16_matrix:
        found = [f for f in BF16_MATRIX_FLAGS if f in cpu.flags]
        return DtypeChoice("bfloat16", f"the CPU has bf16 matrix hardware ({', '.join(found)})")
    key = f"dtype-{cpu.key(threads)}-{hidden}x{intermediate}"
    if cache is not None:
        known = recall(cache, key)
        if known.get("dtype") in ("float32", "bfloat16"):
            return DtypeChoice(known["dtype"], f"measured on this machine earlier ({cache})",
                               dict(known.get("gflops") or {}))
    gflops = (measure or measure_matmul)(hidden, intermediate)
    best = max(("float32", "bfloat16"), key=lambda d: (gflops.get(d, 0.0), d == "float32"))
    choice = DtypeChoice(best, "measured: " + ", ".join(f"{d} {g:.1f} GFLOPS" for d, g in sorted(gflops.items())),
                         gflops)
    if cache is not None:
        remember(cache, key, dtype=best, gflops=gflops, cpu=cpu.model, threads=threads)
    return choice


def choose_width(step_seconds: Callable[[int], float], widths: tuple[int, ...] = (4, 8, 16, 32, 64),
                 gain: float = 1.1) -> tuple[int, dict[int, float]]:
    """The decode batch width with the most tokens per second: widths measured in order (a step's
    seconds at each), stopping once doubling gains less than `gain` (a wider batch then only costs
    memory and latency). Returns (width, tokens per second by width)."""
    rates: dict[int, float] = {}
    best = widths[0]
    for width in widths:
        rates[width] = round(width / max(step_seconds(width), 1e-9), 3)
        if rates[width] > rates[best]:
            if rates[width] < gain * rates[best]:
                break  # faster, but by too little to pay the memory
            best = width
        elif width != best:
            break
    return best, rates


RATES_FILE = "labtax-rates.json"


def _rate_key(model_id: str) -> str:
    cpu = read_cpuinfo()
    return hashlib.sha256(f"{model_id}|{cpu.model}|{' '.join(sorted(cpu.flags))}".encode()).hexdigest()[:16]


def _rates_file() -> Path:
    return cache_dir() / RATES_FILE


def remember_rate(model_id: str, **values: Any) -> None:
    """Record a teacher's measured speed on this machine (the dry run's time estimate reads it)."""
    remember(_rates_file(), _rate_key(model_id), model=model_id, at=time.strftime("%Y-%m-%d"), **values)


def cached_rate(model_id: str | None) -> dict[str, Any]:
    """What was measured for this model on this machine: `seconds_per_request` (from a real run),
    `decode_tokens_per_s` (from the batch-width measurement); {} when nothing was."""
    return recall(_rates_file(), _rate_key(model_id)) if model_id else {}


def estimate_seconds(model_id: str | None, requests: int, completion_tokens: int) -> tuple[float, str] | None:
    """An estimated time for planned requests on this machine: from the seconds a request took in
    earlier runs, else from the measured decode rate (completion tokens only: a lower bound); None
    when this teacher was never measured here."""
    rate = cached_rate(model_id)
    if rate.get("seconds_per_request"):
        return (requests * float(rate["seconds_per_request"]),
                f"{float(rate['seconds_per_request']):.2f} s a request measured on this machine ({rate.get('at')})")
    if rate.get("decode_tokens_per_s"):
        basis = (f"{float(rate['decode_tokens_per_s']):.1f} tokens/s decode measured on this machine "
                 f"({rate.get('at')}; prompts not counted)")
        return completion_tokens / float(rate["decode_tokens_per_s"]), basis
    return None


def describe(choice: DtypeChoice) -> str:
    return f"{choice.dtype} ({choice.reason})"


def as_dict(choice: DtypeChoice) -> dict[str, Any]:
    return asdict(choice)
