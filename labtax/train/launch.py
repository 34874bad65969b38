"""Scale-out: re-execute `python -m labtax train ...` under torchrun, one process per device.

The children carry LABTAX_TORCHRUN=1 so that they train instead of launching again; each joins the
process group in `parallel.init_runtime`. One node uses torchrun's standalone rendezvous (a free
local port); several nodes use a static rendezvous at --rdzv-endpoint with an explicit --node-rank,
the same command on every node.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from labtax.errors import UsageError
from labtax.train.parallel import TORCHRUN_MARKER

LAUNCH_OPTIONS = ("nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint")


def under_torchrun() -> bool:
    return os.environ.get(TORCHRUN_MARKER) == "1"


def forward_args(params: dict[str, Any], flags: dict[str, str] | None = None) -> list[str]:
    """Command-line arguments that reproduce the parsed options, minus the launch options.

    `flags` maps a parameter name to its option (`data_dir` -> `--data`); by default the name itself.
    """
    args: list[str] = []
    for key, value in params.items():
        if key in LAUNCH_OPTIONS or value is None or value is False:
            continue
        flag = (flags or {}).get(key) or "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args


def torchrun_command(train_args: list[str], nproc_per_node: int, nnodes: int = 1, node_rank: int = 0,
                     rdzv_endpoint: str | None = None) -> list[str]:
    # Never import from the cwd (a taxonomy checkout's json.py or torch/): -P (-I before 3.11) for the
    # launcher, PYTHONSAFEPATH (set by launch) for the workers it starts.
    safe = "-P" if sys.version_info >= (3, 11) else "-I"
    cmd = [sys.executable, safe, "-m", "torch.distributed.run", f"--nproc-per-node={nproc_per_node}",
           f"--nnodes={nnodes}"]
    if nnodes == 1 and not rdzv_endpoint:
        cmd.append("--standalone")
    else:
        if not rdzv_endpoint or ":" not in rdzv_endpoint:
            raise UsageError("several nodes need --rdzv-endpoint HOST:PORT (the same on every node)")
        host, port = rdzv_endpoint.rsplit(":", 1)
        cmd += [f"--node-rank={node_rank}", f"--master-addr={host}", f"--master-port={port}"]
    return cmd + ["-m", "labtax", "train", *train_args]


def launch(params: dict[str, Any], flags: dict[str, str] | None = None) -> int:
    """Run the training command under torchrun and return its exit code."""
    nproc = int(params["nproc_per_node"])
    if nproc < 1:
        raise UsageError("--nproc-per-node must be at least 1")
    cmd = torchrun_command(forward_args(params, flags), nproc, int(params.get("nnodes") or 1),
                           int(params.get("node_rank") or 0), params.get("rdzv_endpoint"))
    env = {**os.environ, TORCHRUN_MARKER: "1", "PYTHONSAFEPATH": "1"}
    print("labtax: launching " + " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.call(cmd, env=env)
