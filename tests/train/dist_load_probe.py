"""Run as each of two ranks by test_start_load.py: load a start model the way `labtax train` does under FSDP
(rank 0 reads, the other ranks build on the meta device, shards filled from rank 0), then write what
came out: the gathered weights, every buffer, whether the tie held, and each rank's peak RSS."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from safetensors.torch import save_file

from labtax.train.parallel import init_runtime, load_start_model, prepare_model, shutdown


def main(name: str, out: Path) -> None:
    runtime = init_runtime(5.0)
    net = load_start_model(name, runtime, seed=0)
    meta = all(p.is_meta for p in net.parameters())
    module = prepare_model(net, runtime)
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(module.lm, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    lm = module.lm
    report = {"rank": runtime.rank, "meta_before_shard": meta,
              "tied": lm.lm_head.weight is lm.model.embed_tokens.weight,
              "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    buffers = {f"buffer/{k}": v.detach().cpu().clone() for k, v in lm.named_buffers()}
    save_file(buffers, str(out / f"buffers{runtime.rank}.safetensors"))
    if runtime.is_main:
        save_file({k: v.contiguous() for k, v in full.items() if k != "lm_head.weight"}, str(out / "weights.safetensors"))
    (out / f"rank{runtime.rank}.json").write_text(json.dumps(report))
    shutdown(runtime)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
