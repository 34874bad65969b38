"""Phase 1's anchor: the start model's predictions on skill text, kept while the knowledge is trained.

Phase 1 stores facts by training a few dozen knowledge rows for many epochs, and on a small student
that moves the whole model: the skill leaves' references get less likely, and phase 2 brings them only
part of the way back (docs/train.md, *Keeping the skills*). The anchor is a distillation term from the
start model to itself, as Learning without Forgetting does:

- before phase 1's first step, the start model reads the skill rows of the phase-2 set (the skill
  leaves' generated samples; never the knowledge replay, never an eval item) and its next-token
  distribution at each reply token is stored: the TOP_K most likely tokens and their log-probabilities
  (the rest of the vocabulary is one bucket), in `anchor.safetensors` in the phase folder, so a resumed
  run keeps anchoring to the start and not to where it was killed;
- every step adds `anchor x` the token-mean KL(start || model) over `anchor_rows` of those rows
  (taken in turn) to the knowledge loss.

At the start the term is zero; it pulls back only where the knowledge training moves the model's
predictions on skill text. Every rank computes the same anchor rows (a few per step), so FSDP's
gradient average is the term itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save

from labtax.train.data import TokenizedFile
from labtax.train.packing import collate
from labtax.train.parallel import Runtime
from labtax.util.atomic import atomic_write_chunks, atomic_write_text

TOP_K = 64
TARGETS_FILE = "anchor.safetensors"


def skill_rows(set_path: Path, out: Path) -> Path | None:
    """The skill rows of a phase-2 set (its knowledge replay left out) written to `out` (the same bytes
    on every rank: each may write them); None when the set has none."""
    if not set_path.is_file():
        return None
    kept = []
    for line in set_path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        meta = json.loads(line).get("metadata") or {}
        if not meta.get("replay") and meta.get("kind") != "knowledge":
            kept.append(line)
    if not kept:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "".join(f"{line}\n" for line in kept))
    return out


def top_k_kl(log_probs: torch.Tensor, ref_ids: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per position, KL(reference || model) over the reference's top-k tokens plus one bucket for the
    rest of the vocabulary (exact for that coarser distribution; zero when the model is the reference)."""
    q = ref_logp.exp()
    q_rest = (1.0 - q.sum(-1)).clamp_min(1e-12)
    p_logp = log_probs.gather(1, ref_ids)
    p_rest = (1.0 - p_logp.exp().sum(-1)).clamp_min(1e-12)
    return (q * (ref_logp - p_logp)).sum(-1) + q_rest * (q_rest.log() - p_rest.log())


@dataclass
class Anchor:
    """The anchor rows, the start model's stored distributions on them, and how much each step sees."""

    data: TokenizedFile
    ids: torch.Tensor  # [positions x TOP_K] token ids, every row's reply positions in turn
    logp: torch.Tensor  # [positions x TOP_K] the start model's log-probabilities of those tokens
    offsets: np.ndarray  # row i's positions are offsets[i]:offsets[i + 1]
    weight: float
    rows_per_step: int
    packed: bool
    pad_id: int

    def _batch(self, rows: list[int], runtime: Runtime) -> dict[str, torch.Tensor]:
        return {k: v.to(runtime.device) for k, v in collate([self.data.sample(i) for i in rows], self.packed,
                                                             self.pad_id).items()}

    @classmethod
    def prepare(cls, module: torch.nn.Module, data: TokenizedFile, weight: float, rows_per_step: int,
                phase_dir: Path, runtime: Runtime, packed: bool, pad_id: int,
                resuming: bool = False) -> tuple[Anchor, bool]:
        """The anchor of a phase: when `resuming`, the targets its first start stored in the phase
        folder; else (or when none are stored) the model's own, read now and saved. A fresh start
        always reads them again: a file left by a killed run may be another start model's.
        (anchor, whether the targets were read now)."""
        path = phase_dir / TARGETS_FILE
        empty = torch.zeros((0, TOP_K))
        anchor = cls(data, empty.long(), empty, np.zeros(1, dtype=np.int64), weight,
                     max(1, min(rows_per_step, len(data))), packed, pad_id)
        if resuming and path.is_file():
            stored = load_file(str(path))
            if stored["offsets"].numel() == len(data) + 1:
                anchor.ids, anchor.logp, anchor.offsets = stored["ids"], stored["logp"], stored["offsets"].numpy()
                return anchor, False
        was_training = module.training
        module.eval()
        ids, logp, offsets = [], [], [0]
        with torch.no_grad():
            for i in range(len(data)):
                lp, _ = module(**anchor._batch([i], runtime), log_probs=True)
                top = lp.topk(min(TOP_K, lp.shape[-1]), dim=-1)
                ids.append(top.indices.cpu())
                logp.append(top.values.cpu())
                offsets.append(offsets[-1] + lp.shape[0])
        module.train(was_training)
        anchor.ids, anchor.logp = torch.cat(ids), torch.cat(logp)
        anchor.offsets = np.asarray(offsets, dtype=np.int64)
        if runtime.is_main:  # a few hundred KB: serialised in memory, written as every labtax output is
            atomic_write_chunks(path, [save({"ids": anchor.ids.contiguous(), "logp": anchor.logp.contiguous(),
                                             "offsets": torch.from_numpy(anchor.offsets)})])
        return anchor, True

    def rows(self, step: int) -> list[int]:
        """The rows step `step` (0-based) anchors on: the next `rows_per_step`, in turn."""
        n = len(self.data)
        return [(step * self.rows_per_step + j) % n for j in range(self.rows_per_step)]

    def loss(self, module: torch.nn.Module, step: int, runtime: Runtime) -> tuple[torch.Tensor, int]:
        """The summed KL(start || model) over this step's anchor positions, and how many there are."""
        rows = self.rows(step)
        log_probs, _ = module(**self._batch(rows, runtime), log_probs=True)
        spans = [slice(int(self.offsets[i]), int(self.offsets[i + 1])) for i in rows]
        ref_ids = torch.cat([self.ids[s] for s in spans]).to(runtime.device)
        ref_logp = torch.cat([self.logp[s] for s in spans]).to(runtime.device)
        kl = top_k_kl(log_probs, ref_ids, ref_logp)
        return kl.sum(), int(kl.shape[0])

    def describe(self) -> dict[str, Any]:
        return {"rows": len(self.data), "positions": int(self.offsets[-1]), "rows_per_step": self.rows_per_step,
                "weight": self.weight, "top_k": TOP_K}
