"""Start-model load under torchrun: each rank's peak RSS when every rank reads the whole model
(labtax before issue 23's item 3) against rank 0 reading it and the others building it on the meta
device, their FSDP2 shards filled from rank 0 (labtax.train.parallel.load_start_model).

Run: .venv/bin/python bench/start_load_bench.py [MODEL]   (default embedded-small, SmolLM2-135M;
     2 gloo ranks, one thread each, about a minute on 2 CPU cores)

Both launches run in this one invocation; the ratio is after / before for rank 1 (the rank that no
longer reads the weights). Peak RSS includes what importing torch and transformers costs.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def worker(model: str, mode: str, out: Path) -> None:
    """One rank: load the start model the `mode` way, shard it, report the peak RSS."""
    import torch

    from labtax.models import load_model
    from labtax.train.parallel import init_runtime, load_start_model, prepare_model, shutdown

    runtime = init_runtime(10.0)
    net = (load_model(model, dtype=torch.float32) if mode == "every-rank"
           else load_start_model(model, runtime, seed=0))
    module = prepare_model(net, runtime)
    params = sum(p.numel() for p in module.parameters())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    (out / f"{mode}-{runtime.rank}.json").write_text(json.dumps({"peak_gib": peak, "params": params}))
    shutdown(runtime)


def launch(model: str, mode: str, out: Path) -> list[float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LABTAX_TORCH_THREADS": "1", "LABTAX_TORCHRUN": "1",
           "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
                    __file__, "--worker", model, mode, str(out)], env=env, check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return [json.loads((out / f"{mode}-{r}.json").read_text())["peak_gib"] for r in (0, 1)]


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "embedded-small"
    flags = sorted({f for f in Path("/proc/cpuinfo").read_text().split() if f in ("avx2", "amx_bf16", "avx512_bf16")})
    print(f"cpu flags: {' '.join(flags)}; load {os.getloadavg()[0]:.1f}; model {model}; 2 gloo ranks")
    with tempfile.TemporaryDirectory() as tmp:
        before = launch(model, "every-rank", Path(tmp))
        after = launch(model, "meta", Path(tmp))
    for rank in (0, 1):
        print(f"rank {rank} peak RSS: every rank reads {before[rank]:.2f} GiB, rank 0 reads + meta "
              f"{after[rank]:.2f} GiB ({after[rank] / before[rank]:.2f}x)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], Path(sys.argv[4]))
    else:
        main()
