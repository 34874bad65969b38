"""Scale-out: re-execute `python -m labtax train ...` under torchrun, one process per device.

The children carry LABTAX_TORCHRUN=1 so that they train instead of launching again; each joins the
process group in `parallel.init_runtime`. One node uses torchrun's standalone rendezvous (a free
local port); several nodes use a static rendezvous at --rdzv-endpoint with an explicit --node-rank,
the same command on every node.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from labtax.errors import (
    EXIT_BUG,
    EXIT_FINDINGS,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_TEACHER,
    EXIT_USAGE,
    RankFailed,
    UsageError,
)
from labtax.util.ranks import TORCHRUN_MARKER


@dataclass(frozen=True)
class Placement:
    """Where the training processes run: `--nproc-per-node` processes on each of `--nnodes` nodes,
    this one `--node-rank`, meeting at `--rdzv-endpoint` (several nodes)."""

    nproc_per_node: int
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None


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


def launch(train_args: list[str], placement: Placement) -> int:
    """Run `labtax train TRAIN_ARGS` under torchrun and return its exit code (0), or raise
    `RankFailed` naming the rank that failed first, why, and its exit code. `train_args` are the
    command's own options as the command line rebuilt them (labtax.cli_options.forward_args)."""
    if placement.nproc_per_node < 1:
        raise UsageError("--nproc-per-node must be at least 1")
    cmd = torchrun_command(train_args, placement.nproc_per_node, placement.nnodes, placement.node_rank,
                           placement.rdzv_endpoint)
    print("labtax: launching " + " ".join(cmd), file=sys.stderr, flush=True)
    return run_torchrun(cmd[cmd.index("torch.distributed.run") + 1:])


def run_torchrun(args: list[str]) -> int:
    """torchrun in this process (`torch.distributed.run`'s own entry, minus its exit): the workers
    are still separate processes, but a failure comes back as data (`ChildFailedError`: each failed
    rank's exit code and the message it left in its error file) instead of a traceback per rank."""
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    # torchrun's agent logs its own warnings and, when a worker fails, the failure table: the one
    # line below replaces them.
    for name in ("torch.distributed.run", "torch.distributed.elastic", "torch.distributed.launcher"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # Inherited by the workers: they train instead of launching again, and never import from the cwd.
    marks = {TORCHRUN_MARKER: "1", "PYTHONSAFEPATH": "1"}
    previous = {k: os.environ.get(k) for k in marks}
    os.environ.update(marks)
    try:
        run(parse_args(args))
    except ChildFailedError as exc:
        raise rank_failure(exc) from None
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return EXIT_OK


def rank_failure(exc: Any) -> RankFailed:
    """One line for a failed torchrun: the first rank that failed, why, and how many were stopped."""
    rank, first = exc.get_first_failure()
    others = len(exc.failures) - 1
    if first.exitcode < 0:
        signal_name = first.signal_name()
        why = f"was killed by {signal_name}" + (" (out of memory?)" if signal_name == "SIGKILL" else "")
        code = EXIT_BUG  # not the data's fault: CI must not read it as findings
    else:
        reported = first.message if isinstance(first.message, str) and first.error_file_data.get("labtax") else None
        why = (f"failed: {reported}" if reported
               else f"exited with code {first.exitcode} (its output is above)")
        code = first.exitcode if first.exitcode in RANK_EXIT_CODES else EXIT_BUG
    tail = f"; {others} other rank{'s' if others > 1 else ''} failed or stopped" if others > 0 else ""
    return RankFailed(f"torchrun: rank {rank} (local rank {first.local_rank}, pid {first.pid}) {why}{tail}", code)


# The exit codes a rank passes on unchanged: labtax's own (a usage error in a rank is still exit 2).
RANK_EXIT_CODES = (EXIT_FINDINGS, EXIT_USAGE, EXIT_BUG, EXIT_LOCKED, EXIT_TEACHER)
