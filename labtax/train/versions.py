"""The library versions training needs, checked before anything is loaded, with a clear error.

The floors are what the code relies on (pyproject.toml states the same ones): torch 2.6 exports
FSDP2's `fully_shard` from `torch.distributed.fsdp`; transformers 4.54 turns restarting
`position_ids` into per-sample causal masks (`masking_utils.find_packed_sequence_indices`), which the
packed micro-batches depend on so that no token attends across samples.
"""

from __future__ import annotations

import re

from labtax.errors import UsageError

TORCH_FLOOR = (2, 6)
TRANSFORMERS_FLOOR = (4, 54)


def _version(text: str) -> tuple[int, int]:
    """(major, minor) of a version string such as "2.13.0+cpu" or "5.0.0.dev0"."""
    found = re.match(r"(\d+)\.(\d+)", text)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def _floor(floor: tuple[int, int]) -> str:
    return ".".join(map(str, floor))


def check_training_versions() -> None:
    """UsageError (exit 2) naming the library, what is installed and what is needed."""
    import torch
    import transformers

    if _version(torch.__version__) < TORCH_FLOOR:
        raise UsageError(f"labtax train needs torch >= {_floor(TORCH_FLOOR)} (FSDP2 fully_shard); "
                         f"installed: {torch.__version__}", hint="pip install -U 'torch>=2.6'")
    if _version(transformers.__version__) < TRANSFORMERS_FLOOR:
        raise UsageError(f"labtax train needs transformers >= {_floor(TRANSFORMERS_FLOOR)} (per-sample masks "
                         f"for packed sequences); installed: {transformers.__version__}",
                         hint="pip install -U 'transformers>=4.54'")
