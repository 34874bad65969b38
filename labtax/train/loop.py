"""The training loop of one phase: packed micro-batches, token-mean loss, AdamW, warm-up, clipping.

Read it like nanoGPT's loop: plan the step, run its micro-batches (forward, loss, backward), clip,
step, log, maybe checkpoint. The loss of a step is the sum of the token losses of all its
micro-batches (on all ranks) divided by the number of loss tokens of the whole step, so every token
weighs the same however the samples fell into micro-batches or ranks.
"""

from __future__ import annotations

import bisect
import json
import math
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from labtax.train.anchor import Anchor
from labtax.train.attention import KERNELS_USED
from labtax.train.checkpoint import find_state, load_state, read_state_header, save_hf, save_state
from labtax.train.config import PhaseConfig
from labtax.train.data import TokenizedFile
from labtax.train.lm_loss import TrainModule
from labtax.train.lora import parameter_count
from labtax.train.mfu import mfu, peak_flops, step_flops
from labtax.train.packing import StepPlan, collate, epoch_order, plan_step, steps_per_epoch
from labtax.train.parallel import Runtime

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass
class PhaseResult:
    """What a phase leaves behind: its HF checkpoints (with their held-out loss) and the last one."""

    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    samples: int = 0


def lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    """Linear warm-up over `warmup` steps (the first step already moves), then constant or cosine."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def micro_batch_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], runtime: Runtime) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the batch's loss tokens (and how many there were)."""
    batch = {k: v.to(runtime.device) for k, v in batch.items()}
    with runtime.autocast():
        loss, n = model(**batch)
    return loss, int(n)


@torch.no_grad()
def evaluate_loss(model: torch.nn.Module, data: TokenizedFile, capacity: int, runtime: Runtime,
                  packed: bool, pad_id: int) -> float:
    """Token-mean loss over a whole held-out file (nan when it is empty)."""
    if len(data) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    plan = plan_step(np.arange(len(data)), data.lengths, data.loss_counts, capacity, runtime.world_size, packed)
    total = 0.0
    for indices in plan.micro_batches[runtime.rank]:
        loss, _ = micro_batch_loss(model, collate([data.sample(i) for i in indices], packed, pad_id), runtime)
        total += float(loss)
    model.train(was_training)
    return runtime.all_sum(total) / plan.loss_tokens


def _dtype_names(tensors: Sequence[torch.Tensor]) -> list[str]:
    return sorted({str(t.dtype).removeprefix("torch.") for t in tensors})


def precision_record(model: torch.nn.Module, optimizer: torch.optim.Optimizer, runtime: Runtime) -> dict[str, Any]:
    """The dtypes of the trainable parameters, their gradients and the optimizer's moments (after a
    step, before the gradients are cleared), and the compute dtype: proof of fp32 master weights."""
    params = [p for p in model.parameters() if p.requires_grad]
    moments = [v for st in optimizer.state.values() for k, v in st.items()
               if k != "step" and isinstance(v, torch.Tensor)]
    return {"params": _dtype_names(params), "grads": _dtype_names([p.grad for p in params if p.grad is not None]),
            "optimizer": _dtype_names(moments),
            "compute": str(runtime.amp_dtype or torch.float32).removeprefix("torch."),
            "fused_adamw": bool(optimizer.defaults.get("fused")), "attention": sorted(KERNELS_USED)}


def samples_after(step: int, n: int, batch: int, per_epoch: int) -> int:
    """Samples seen after `step` steps: whole epochs, plus full batches of the current one (an
    epoch's last step takes the remainder)."""
    return (step // per_epoch) * n + min((step % per_epoch) * batch, n)


def save_steps(n: int, batch: int, per_epoch: int, total: int, save_every: int) -> list[int]:
    """The steps after which a checkpoint is written: every `save_every` samples when it is set
    (and the last step), else each epoch's end (and the last step). Asking for a checkpoint every
    N samples replaces the per-epoch ones: a run that asked for one at the end gets one, not one per
    epoch (20 epochs of a 135M model were 20 x 600 MB)."""
    due = []
    for step in range(1, total + 1):
        if save_every:
            now, before = samples_after(step, n, batch, per_epoch), samples_after(step - 1, n, batch, per_epoch)
            hit = now // save_every > before // save_every
        else:
            hit = step % per_epoch == 0
        if hit or step == total:
            due.append(step)
    return due


def _fmt_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class MetricsLog:
    """The phase's JSONL metrics, rank 0 only; on resume, lines past the restored step are dropped."""

    def __init__(self, path: Path, runtime: Runtime, resume_step: int,
                 listener: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.path, self.enabled, self.listener = path, runtime.is_main, listener
        if not self.enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if path.exists() and resume_step > 0:
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut by a kill
                if record.get("event") != "step" or record.get("step", 0) <= resume_step:
                    kept.append(line)
        path.write_text("".join(f"{line}\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            if self.listener is not None:  # --report-to trackers (labtax/train/reporting.py)
                self.listener(record)


@dataclass
class _Phase:
    """One phase being trained: what setup built once, and where the loop is (`step`, `samples`)."""

    model: TrainModule
    tokenizer: PreTrainedTokenizerBase
    data: TokenizedFile
    test: TokenizedFile | None
    cfg: PhaseConfig
    phase_dir: Path
    runtime: Runtime
    packed: bool
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    metrics: MetricsLog
    total_steps: int
    per_epoch: int
    pad_id: int
    inputs: dict[str, Any] | None
    keep: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None
    result: PhaseResult = field(default_factory=PhaseResult)
    step: int = 0
    samples: int = 0
    anchor: Anchor | None = None


def _optimizer(model: TrainModule, cfg: PhaseConfig) -> torch.optim.Optimizer:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)  # no weight decay on norms and biases
    # The fused AdamW kernel: on a CPU the default per-tensor loop took 2.1 s a step for 135M
    # parameters, the fused one 0.3 s, with the same update up to float rounding. Under FSDP2 too:
    # the fused kernel takes DTensor parameters (each rank updates its own shard; tested on gloo).
    fused = all(p.device.type in ("cpu", "cuda") for p in decay + no_decay)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=cfg.betas, eps=1e-8, fused=fused or None)


def _setup(model: TrainModule, tokenizer: PreTrainedTokenizerBase, data: TokenizedFile, test: TokenizedFile | None,
           cfg: PhaseConfig, phase_dir: Path, runtime: Runtime, packed: bool, log: Callable[[str], None],
           on_record: Callable[[dict[str, Any]], None] | None, inputs: dict[str, Any] | None,
           keep: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None) -> _Phase:
    """The optimizer and schedule, the state to resume from when there is one, and the metrics log."""
    n = len(data)
    per_epoch = steps_per_epoch(n, cfg.effective_batch)
    total_steps = per_epoch * cfg.epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    optimizer = _optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.warmup_steps, total_steps, cfg.schedule))
    result = PhaseResult()
    step, samples = 0, 0
    found = find_state(phase_dir / "state")
    if found is not None:
        progress = load_state(model, optimizer, scheduler, found, read_state_header(found), runtime)
        step, samples = progress["step"], progress["samples"]
        # The state names each checkpoint by the path it was saved at; an output folder moved or copied
        # since then resumes with its own: pruning must never delete another folder's checkpoints.
        result.checkpoints = [{**c, "path": str(phase_dir / "checkpoints" / Path(c["path"]).name)}
                              for c in progress["checkpoints"]]
        if runtime.is_main:
            log(f"[{cfg.name}] resuming at step {step}/{total_steps} ({samples} samples seen)")
    metrics = MetricsLog(phase_dir / "metrics.jsonl", runtime, step, on_record)
    if step == 0:
        metrics.write({"event": "start", "phase": cfg.name, "samples": n, "steps": total_steps,
                       "config": cfg.to_dict(), "data": data.meta, "world_size": runtime.world_size,
                       "device": str(runtime.device), "compute_dtype": str(runtime.amp_dtype or torch.float32),
                       "fsdp": runtime.distributed, "packed": packed})
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return _Phase(model, tokenizer, data, test, cfg, phase_dir, runtime, packed, optimizer, scheduler, metrics,
                  total_steps, per_epoch, pad_id, inputs, keep, result, step, samples)


def _checkpoint(p: _Phase, reason: str) -> None:
    """Save the model (with its held-out loss), then the training state, then prune what selection
    can no longer choose."""
    target = p.phase_dir / "checkpoints" / f"samples_{p.samples}"
    test_loss = (evaluate_loss(p.model, p.test, p.cfg.max_tokens_per_batch, p.runtime, p.packed, p.pad_id)
                 if p.test else None)
    meta = {"phase": p.cfg.name, "step": p.step, "samples": p.samples, "epoch": p.step / p.per_epoch,
            "test_loss": test_loss, "reason": reason}
    save_hf(p.model, p.tokenizer, target, p.runtime, meta)
    checkpoints = [c for c in p.result.checkpoints if c["path"] != str(target)]
    checkpoints.append({"path": str(target), **meta})
    p.result.checkpoints = checkpoints
    p.metrics.write({"event": "checkpoint", **checkpoints[-1]})
    kept = {c["path"] for c in (p.keep(checkpoints) if p.keep else checkpoints)}
    dropped = [c for c in checkpoints if c["path"] not in kept and not c.get("pruned")]
    for c in dropped:
        c["pruned"] = True  # selection can no longer choose it: its folder goes (the record stays)
    if p.cfg.save_state:
        save_state(p.model, p.optimizer, p.scheduler,
                   {"step": p.step, "samples": p.samples, "checkpoints": checkpoints,
                    "data_key": p.data.meta["key"], "config": p.cfg.to_dict()},
                   p.phase_dir / "state", p.runtime, p.inputs)
    # Deleted only after the state that no longer lists them is on disk: a failed save resumes
    # from a state whose checkpoints all exist.
    if p.runtime.is_main:
        for c in dropped:
            shutil.rmtree(c["path"], ignore_errors=True)


def _train_step(p: _Phase, plan: StepPlan, first_step: int) -> tuple[float, float, float, float | None]:
    """One optimizer step over the plan's micro-batches (and the anchor's rows, when the phase has
    one); (the step's token-mean loss, the gradient norm before clipping, the learning rate it used,
    the anchor's token-mean KL or None)."""
    loss_sum = 0.0
    for indices in plan.micro_batches[p.runtime.rank]:
        batch = collate([p.data.sample(i) for i in indices], p.packed, p.pad_id)
        loss, _ = micro_batch_loss(p.model, batch, p.runtime)
        # FSDP averages gradients over ranks; scaling by world size turns that into a sum, so the
        # gradient is exactly that of (all loss tokens of the step) / (their count).
        (loss * (p.runtime.world_size / plan.loss_tokens)).backward()
        loss_sum += float(loss.detach())
    anchor_kl = None
    if p.anchor is not None:
        # Every rank computes the same anchor rows, so FSDP's average is the term itself.
        kl, positions = p.anchor.loss(p.model, p.step, p.runtime)
        (kl * (p.anchor.weight / max(1, positions))).backward()
        anchor_kl = float(kl.detach()) / max(1, positions)
    grad_norm = torch.nn.utils.clip_grad_norm_(p.model.parameters(), p.cfg.grad_clip or float("inf"))
    if hasattr(grad_norm, "full_tensor"):
        grad_norm = grad_norm.full_tensor()
    lr = float(p.scheduler.get_last_lr()[0])
    p.optimizer.step()
    if p.step == first_step:  # once per process start: what the master copy really is (docs/train.md)
        p.metrics.write({"event": "dtypes", "step": p.step + 1, **precision_record(p.model, p.optimizer, p.runtime)})
    p.scheduler.step()
    p.optimizer.zero_grad(set_to_none=True)
    p.step += 1
    p.samples += plan.samples
    return p.runtime.all_sum(loss_sum) / plan.loss_tokens, float(grad_norm), lr, anchor_kl


@dataclass
class _Pace:
    """Throughput and the ETA: steps and checkpoint saves timed apart (a 135M checkpoint with its
    state takes seconds, a 7B one minutes)."""

    first_step: int
    due: list[int]  # the steps after which a checkpoint is saved
    start: float = field(default_factory=time.perf_counter)
    tokens: int = 0
    save_seconds: float = 0.0
    saves: int = 0

    def saves_left(self, step: int) -> int:
        return len(self.due) - bisect.bisect_right(self.due, step - 1)

    def eta(self, step: int, total_steps: int) -> float:
        step_time = (time.perf_counter() - self.start - self.save_seconds) / (step - self.first_step)
        per_save = self.save_seconds / self.saves if self.saves else 0.0
        return step_time * (total_steps - step) + per_save * self.saves_left(step)


def _step_line(p: _Phase, pace: _Pace, epoch: int, step_loss: float, lr: float, record: dict[str, Any]) -> str:
    """The progress line of a step: loss, learning rate, throughput, MFU where known, the ETA."""
    tok_s = pace.tokens / (time.perf_counter() - pace.start)
    saves_left = pace.saves_left(p.step)
    shown = f" mfu {record['mfu']:.1%}" if "mfu" in record else ""
    return (f"[{p.cfg.name}] step {p.step}/{p.total_steps} epoch {epoch + 1}/{p.cfg.epochs} loss {step_loss:.4f} "
             f"lr {lr:.2e} tok/s {tok_s:,.0f}{shown} eta {_fmt_eta(pace.eta(p.step, p.total_steps))}"
             + ("" if pace.saves or not saves_left else f" + {saves_left} checkpoint{'s' * (saves_left > 1)}"))


def train_phase(model: TrainModule, tokenizer: PreTrainedTokenizerBase, data: TokenizedFile,
                test: TokenizedFile | None, cfg: PhaseConfig, seed: int, phase_dir: Path,
                runtime: Runtime, packed: bool = True,
                log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
                on_record: Callable[[dict[str, Any]], None] | None = None,
                inputs: dict[str, Any] | None = None,
                keep: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
                anchor_rows: TokenizedFile | None = None) -> PhaseResult:
    """Train one phase in place on `model` (already prepared for the runtime); resume if a state exists.

    `inputs` (what made the run; phases.py checked a found state against them) is stored in each
    state; `keep` returns the checkpoints selection can still choose: the others are deleted from
    disk once the state that no longer lists them is saved. `anchor_rows` (with `cfg.anchor` > 0):
    the rows whose start distributions every step keeps (labtax/train/anchor.py)."""
    p = _setup(model, tokenizer, data, test, cfg, phase_dir, runtime, packed, log, on_record, inputs, keep)
    if anchor_rows is not None and len(anchor_rows) and cfg.anchor > 0:
        p.anchor, fresh = Anchor.prepare(model, anchor_rows, cfg.anchor, cfg.anchor_rows, phase_dir, runtime,
                                         packed, p.pad_id, resuming=p.step > 0)
        if runtime.is_main:
            info = p.anchor.describe()
            log(f"[{cfg.name}] anchor: KL to the start model on {info['rows']} skill rows ({info['positions']:,} "
                f"reply tokens), {info['rows_per_step']} a step, weight {cfg.anchor:g}"
                + ("" if fresh or p.step == 0 else " (its stored targets)"))
    model.train()
    # MFU per step where the device's peak is known (a GPU): labtax/train/mfu.py.
    peak = peak_flops(runtime.device)
    lm_config = getattr(getattr(model, "lm", None), "config", None)
    n_params = parameter_count(model)  # a QLoRA model's 4-bit weights counted as values, not bytes
    pace = _Pace(p.step, save_steps(len(data), cfg.effective_batch, p.per_epoch, p.total_steps, cfg.save_every))
    due = set(pace.due)
    while p.step < p.total_steps:
        epoch, in_epoch = divmod(p.step, p.per_epoch)
        order = epoch_order(len(data), seed, epoch)
        plan = plan_step(order[in_epoch * cfg.effective_batch:(in_epoch + 1) * cfg.effective_batch],
                         data.lengths, data.loss_counts, cfg.max_tokens_per_batch, runtime.world_size, packed)
        t0 = time.perf_counter()
        step_loss, grad_norm, lr, anchor_kl = _train_step(p, plan, pace.first_step)
        dt = time.perf_counter() - t0
        pace.tokens += plan.tokens
        record = {"event": "step", "step": p.step, "epoch": epoch + 1, "samples": p.samples,
                  "loss": step_loss, "lr": lr, "grad_norm": grad_norm, "tokens": plan.tokens,
                  "loss_tokens": plan.loss_tokens, "seconds": dt, "tokens_per_s": plan.tokens / dt}
        if anchor_kl is not None:
            record["anchor_kl"] = anchor_kl
        if peak is not None and lm_config is not None:
            lengths = (int(data.lengths[i]) for rank in plan.micro_batches for mb in rank for i in mb)
            flops = step_flops(n_params, lm_config.num_hidden_layers, lm_config.hidden_size, lengths)
            record["mfu"] = mfu(flops, dt, peak, runtime.world_size)
        p.metrics.write(record)
        if runtime.is_main:
            log(_step_line(p, pace, epoch, step_loss, lr, record))
        if p.step in due:
            t_save = time.perf_counter()
            _checkpoint(p, "final" if p.step == p.total_steps else "save_every" if cfg.save_every else "epoch")
            pace.save_seconds += time.perf_counter() - t_save
            pace.saves += 1
    p.result.steps, p.result.samples = p.step, p.samples
    return p.result
