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

Memory decides too. A model's weights in fp32 take twice their bf16 size (the 1.5B teacher: 7.1 GB
against 3.55 GB; its peak RSS was 10.3 GiB in fp32), so a third choice keeps the weights in bf16 and
computes in fp32 (`bf16-fp32`): each Linear widens its weight chunk by chunk into one small reused
buffer (2 MiB, so a chunk is still in the CPU's cache when its matmul reads it) just before the
matmul; activations, the KV cache and the logits are fp32. The measurement times that path too
(measured on the 2-core AVX2 EPYC, one thread, [32 x 1536] @ [1536 x 8960]: fp32 48 GFLOPS, chunked
widening 48, bf16 10). The fastest of the three whose weights fit the memory budget
(`$LABTAX_TEACHER_RSS_GIB`, default 5 GiB, less 1.5 GiB for the KV cache and the runtime) is chosen;
where none fits, the fastest of the two that keep bf16 weights.

Threads come from `labtax.models.choose_threads()` (the cores other work leaves free), for the
teacher, `eval` and `train` alike.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labtax import models
from labtax.errors import UsageError
from labtax.models import cache_dir

CPUINFO = Path("/proc/cpuinfo")
BF16_MATRIX_FLAGS = ("amx_bf16", "avx512_bf16")
# bf16 weights, fp32 compute: the name `--dtype` and $LABTAX_TEACHER_DTYPE take, and the
# measurement's key for it.
MIXED = "bf16-fp32"
DTYPES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16",
          "float16": "float16", MIXED: MIXED}
RSS_ENV = "LABTAX_TEACHER_RSS_GIB"
RSS_BUDGET_GIB = 5.0
# What a loaded model's process holds besides its weights: the KV cache's default budget (1 GiB,
# $LABTAX_TEACHER_KV_GIB) and the runtime (torch, transformers, the tokenizer, activations). Measured
# with the 1.5B teacher in bf16-fp32 (3.31 GiB of weights): 3.35 GiB after loading, 3.89 GiB peak
# generating 16 rows (bench/teacher_bench.py).
RESERVE_GIB = 1.5
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
    dtype: str  # the compute dtype, "float32" or "bfloat16" (torch's names)
    reason: str  # one line for logs: why this dtype
    gflops: dict[str, float] = field(default_factory=dict)  # what the measurement found, when one ran
    storage: str = ""  # the weights' dtype where it differs from `dtype` ("bfloat16" for bf16-fp32)

    def torch_dtype(self) -> Any:
        """The compute dtype: activations, the KV cache, logits."""
        import torch

        return getattr(torch, self.dtype)

    def storage_dtype(self) -> Any:
        """The dtype the weights are kept in."""
        import torch

        return getattr(torch, self.storage or self.dtype)

    @property
    def name(self) -> str:
        """fp32 / bf16 / bf16-fp32 as the user writes them."""
        if self.storage and self.storage != self.dtype:
            return MIXED
        return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(self.dtype, self.dtype)


Measure = Callable[[int, int], dict[str, float]]


def measure_matmul(hidden: int, intermediate: int, rows: int = 32, seconds: float = 0.15,
                   rounds: int = 3) -> dict[str, float]:
    """GFLOPS of a [rows x hidden] @ [hidden x intermediate] matmul in fp32, in bf16, and with bf16
    weights widened chunk by chunk for an fp32 matmul (`bf16-fp32`, the path `widen_compute` installs),
    on this thread count: the model's MLP shape at a decode batch, the work that dominates generation.

    The modes take turns over `rounds` rounds and each keeps its best round: on a shared machine one
    unlucky window (another process holding a core while a 2-thread matmul waits for it) once measured
    bf16-fp32 at 1.4 GFLOPS where it runs at 75, and the cached choice then slowed every later run 5x."""
    import torch

    modes = (("float32", "float32", "float32"), ("bfloat16", "bfloat16", "bfloat16"),
             (MIXED, "bfloat16", "float32"))
    cases = []
    for name, weights, acts in modes:
        a = torch.randn(rows, hidden, dtype=getattr(torch, acts))
        w = torch.randn(intermediate, hidden, dtype=getattr(torch, weights))
        run = torch.nn.functional.linear if weights == acts else widened_linear
        run(a, w, None)  # warm-up: first-call dispatch and allocation
        cases.append((name, run, a, w))
    out: dict[str, float] = {}
    for _ in range(rounds):
        for name, run, a, w in cases:
            n, started = 0, time.perf_counter()
            while True:
                run(a, w, None)
                n += 1
                elapsed = time.perf_counter() - started
                if elapsed >= seconds or n >= 200:
                    break
            out[name] = max(out.get(name, 0.0), round(2 * rows * hidden * intermediate * n / elapsed / 1e9, 2))
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
    """fp32|float32|bf16|bfloat16|fp16|float16 -> torch's name, bf16-fp32 as is; None or "auto" -> None
    (choose)."""
    if name is None or name in ("", "auto"):
        return None
    if name not in DTYPES:
        raise UsageError(f"dtype {name!r} is not one of auto, fp32, bf16, {MIXED}, fp16",
                         hint=f"check --dtype or ${ENV}")
    return DTYPES[name]


def asked(name: str, reason: str) -> DtypeChoice:
    """The choice for a dtype the user named (normalised)."""
    if name == MIXED:
        return DtypeChoice("float32", reason, storage="bfloat16")
    return DtypeChoice(name, reason)


def rss_budget_gib() -> float:
    """The memory an in-process model may take ($LABTAX_TEACHER_RSS_GIB, default 5 GiB)."""
    try:
        return float(os.environ.get(RSS_ENV) or RSS_BUDGET_GIB)
    except ValueError:
        raise UsageError(f"${RSS_ENV} must be a number of GiB, not {os.environ.get(RSS_ENV)!r}") from None


def weight_count(folder: Path | None) -> int:
    """The number of weights in a model folder's safetensors files (their headers only: a few KB
    read); 0 where there are none to read (`tiny`, a folder of other files)."""
    if folder is None:
        return 0
    total = 0
    for path in sorted(Path(folder).glob("*.safetensors")):
        try:
            with path.open("rb") as f:
                (size,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(size))
        except (OSError, ValueError, struct.error):
            continue
        for name, entry in header.items():
            if name != "__metadata__" and isinstance(entry, dict):
                total += math.prod(int(d) for d in entry.get("shape", []))
    return total


BYTES = {"float32": 4, "bfloat16": 2, MIXED: 2}


def pick(gflops: dict[str, float], weights: int, budget_gib: float) -> tuple[str, str]:
    """(the fastest of fp32, bf16, bf16-fp32 whose weights fit `budget_gib` less the reserve, why).
    Where none fits, the fastest of the two that keep bf16 weights (the least memory there is)."""
    room = (budget_gib - RESERVE_GIB) * (1 << 30)
    fits = [d for d in BYTES if d in gflops and weights * BYTES[d] <= room]
    pool = fits or [d for d in (MIXED, "bfloat16") if d in gflops] or list(gflops) or ["float32"]
    # Ties go to fp32 (exact training numerics), then bf16-fp32 (fp32 arithmetic).
    best = max(pool, key=lambda d: (gflops.get(d, 0.0), d == "float32", d == MIXED))
    measured = ", ".join(f"{d} {g:.1f} GFLOPS" for d, g in sorted(gflops.items()))
    if fits and len(fits) < len([d for d in BYTES if d in gflops]):
        gone = sorted(d for d in BYTES if d in gflops and d not in fits)
        return best, (f"measured: {measured}; {', '.join(gone)} weights ({weights / 1e9:.2f}B) exceed the "
                      f"{budget_gib:g} GiB budget (${RSS_ENV})")
    if not fits and weights:
        return best, (f"measured: {measured}; no dtype fits {weights / 1e9:.2f}B weights in {budget_gib:g} GiB "
                      f"(${RSS_ENV}): the least memory")
    return best, f"measured: {measured}"


def choose_dtype(device: str, *, hidden: int, intermediate: int, threads: int, requested: str | None = None,
                 cache: Path | None = None, cpu: CpuInfo | None = None,
                 measure: Measure | None = None, weights: int = 0) -> DtypeChoice:
    """The compute dtype (and the weights' dtype) for a model with this MLP shape and `weights`
    parameters on `device` (see the module docstring)."""
    wanted = normalise_dtype(requested) or normalise_dtype(os.environ.get(ENV))
    if wanted is not None:
        return asked(wanted, "asked for" + (" (--dtype)" if normalise_dtype(requested) else f" (${ENV})"))
    if device != "cpu":
        return DtypeChoice("bfloat16", f"{device}: bf16 compute")
    cpu = cpu or read_cpuinfo()
    if cpu.bf16_matrix:
        # bf16 is both the fastest and the smallest here: nothing to measure.
        found = [f for f in BF16_MATRIX_FLAGS if f in cpu.flags]
        return DtypeChoice("bfloat16", f"the CPU has bf16 matrix hardware ({', '.join(found)})")
    # The cache keeps the GFLOPS (v2: with bf16-fp32); the choice is made from them each time, since
    # the memory side depends on the model.
    key = f"dtype2-{cpu.key(threads)}-{hidden}x{intermediate}"
    known = recall(cache, key) if cache is not None else {}
    gflops = {str(k): float(v) for k, v in dict(known.get("gflops") or {}).items()}
    earlier = bool(gflops)
    if not earlier:
        gflops = (measure or measure_matmul)(hidden, intermediate)
    best, why = pick(gflops, weights, rss_budget_gib())
    if earlier:
        why = why.replace("measured:", f"measured on this machine earlier ({cache}):", 1)
    if cache is not None and not earlier:
        remember(cache, key, dtype=best, gflops=gflops, cpu=cpu.model, threads=threads)
    return asked(best, why) if best == MIXED else DtypeChoice(best, why, gflops)


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
    return f"{choice.name} ({choice.reason})"


# --- bf16 weights, fp32 compute ---

# A chunk of widened weight rows: small enough to stay in the CPU's cache between its upcast and
# its matmul (one whole widened 1536x8960 weight, 55 MB, went through memory twice: 19-37 GFLOPS
# against 25-48 chunked, measured on the AVX2 EPYC at one thread).
CHUNK_BYTES = 2 << 20
_scratch = threading.local()  # one buffer per thread: a generation thread and the main thread never share it


def _buffer(elements: int, dtype: Any, device: Any) -> Any:
    import torch

    buf = getattr(_scratch, "buf", None)
    if buf is None or buf.numel() < elements or buf.dtype != dtype or buf.device != torch.device(device):
        # A normal tensor even when first asked for in inference mode: an inference tensor could not be
        # written outside it (a chat after a generation in the same thread).
        with torch.inference_mode(False):
            buf = _scratch.buf = torch.empty(elements, dtype=dtype, device=device)
    return buf


def widened_linear(x: Any, weight: Any, bias: Any) -> Any:
    """x @ weight.T + bias in x's dtype, the weight widened to it a chunk of rows at a time into one
    reused buffer: never a second whole copy of the weight."""
    import torch

    if torch.is_grad_enabled():  # inference only: a chunk's buffer is overwritten by the next one
        with torch.no_grad():
            return widened_linear(x, weight, bias)
    out_features, in_features = weight.shape
    rows = max(1, CHUNK_BYTES // (in_features * x.element_size()))
    buf = _buffer(min(rows, out_features) * in_features, x.dtype, x.device)
    out = torch.empty(*x.shape[:-1], out_features, dtype=x.dtype, device=x.device)
    for start in range(0, out_features, rows):
        n = min(rows, out_features - start)
        w = buf[: n * in_features].view(n, in_features)
        w.copy_(weight[start : start + n])
        out[..., start : start + n] = torch.nn.functional.linear(
            x, w, None if bias is None else bias[start : start + n].to(x.dtype))
    return out


def _widened_class(base: type) -> type:
    class Widened(base):  # type: ignore[misc,valid-type]
        """A Linear whose weight stays in its stored dtype and computes in its input's (fp32)."""

        def forward(self, x: Any) -> Any:
            if self.weight.dtype == x.dtype:
                return super().forward(x)
            return widened_linear(x, self.weight, self.bias)

    Widened.__name__ = Widened.__qualname__ = f"Widened{base.__name__}"
    return Widened


def widen_compute(model: Any, dtype: Any) -> Any:
    """Make `model` (weights in a narrower dtype, bf16) compute in `dtype` (fp32) without a second
    copy of its weights: every Linear widens its weight chunk by chunk for its matmul, embeddings
    return `dtype`, and the small rest (norms, biases) is stored in `dtype`. Returns the model."""
    import torch

    classes: dict[type, type] = {}
    big: set[int] = set()
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            big.add(id(module.weight))
            if type(module) not in classes:
                classes[type(module)] = _widened_class(type(module))
            module.__class__ = classes[type(module)]
        elif isinstance(module, torch.nn.Embedding):
            big.add(id(module.weight))
            module.register_forward_hook(lambda _m, _i, out: out.to(dtype))
    with torch.no_grad():
        for param in model.parameters():
            if id(param) not in big and param.is_floating_point() and param.dtype != dtype:
                param.data = param.data.to(dtype)
        for module in list(model.modules()):
            _restore_buffers(module, dtype)
    model.labtax_compute_dtype = dtype
    return model


def _restore_buffers(module: Any, dtype: Any) -> None:
    """A module's own floating buffers in `dtype`. Rotary frequencies rounded to bf16 when the model
    was loaded (`.to(bf16)` casts buffers) are computed again from the config: widened back they would
    keep bf16's error, which grows with the position."""
    own = {n: b for n, b in module.named_buffers(recurse=False) if b.is_floating_point() and b.dtype != dtype}
    if not own:
        return
    fresh: dict[str, Any] = {}
    if "inv_freq" in own and getattr(module, "config", None) is not None:
        try:
            fresh = dict(type(module)(module.config).named_buffers(recurse=False))
        except Exception:  # noqa: BLE001 - a rotary class that cannot be rebuilt: widened as it is
            fresh = {}
    for n, b in own.items():
        value = fresh.get(n, b)
        setattr(module, n, value.to(device=b.device, dtype=dtype))


def compute_dtype(model: Any) -> Any:
    """The dtype a model computes in: `widen_compute`'s, else its weights'."""
    return getattr(model, "labtax_compute_dtype", None) or next(model.parameters()).dtype


def load(name: str, choice: DtypeChoice, *, threads: int | None = None, device: str = "cpu",
         seed: int | None = None) -> Any:
    """`models.load_model` in the choice's weight dtype, widened for its compute dtype where they differ."""
    model = models.load_model(name, dtype=choice.storage_dtype(), threads=threads,
                              seed=models.TINY_SEED if seed is None else seed).to(device)  # type: ignore[arg-type]
    if choice.storage and choice.storage != choice.dtype:
        widen_compute(model, choice.torch_dtype())
    return model


def choose_for(name: str, device: str, threads: int, requested: str | None = None,
               cache: Path | None = None) -> DtypeChoice:
    """`choose_dtype` for a model by name: its MLP shape and weight count; the measurement cached in
    `cache` (default: beside its weights)."""
    hidden, intermediate = models.mlp_shape(name)
    folder = models.weights_dir(name)
    return choose_dtype(device, hidden=hidden, intermediate=intermediate, threads=threads, requested=requested,
                        cache=cache or choice_file(folder), weights=weight_count(folder))


def as_dict(choice: DtypeChoice) -> dict[str, Any]:
    return asdict(choice)
