"""The training forward: decoder, then a chunked LM head fused with the cross-entropy.

With a 49k vocabulary the logits of a 4k-token micro-batch take 800 MB in fp32, three times over
(logits, log-softmax, their gradient), and dominate a small model's time and memory. So only the
positions that carry a target go through the head, in chunks of CHUNK rows, and each chunk's
gradient (softmax - one-hot) is turned into the gradients of the hidden states and of the head's
weight right away, as Liger-Kernel's fused linear cross-entropy does: peak memory is one chunk of
logits, and the arithmetic is the same three matmuls as the unfused head.

`TrainModule` wraps the Hugging Face model so that FSDP2 can shard it as one root: the embedding,
final norm and (tied) head belong to the root group and are gathered for the whole forward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from labtax.train.attention import sample_bounds, use_packed_attention
from labtax.train.data import IGNORE
from labtax.train.packing import PACKED_MODEL_TYPES

CHUNK = 1024  # rows of logits materialised at once: 1024 x 49152 x 4 bytes = 200 MB


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """sum_i CE(hidden_i @ weight.T, target_i), gradients computed chunk by chunk in the forward."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], CHUNK):
            h, t = hidden[start:start + CHUNK], targets[start:start + CHUNK]
            logits = (h @ weight.t()).float()
            lse = torch.logsumexp(logits, dim=-1)
            loss += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            if need_h or need_w:
                probs = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
                probs[torch.arange(len(t), device=t.device), t] -= 1.0
                g = probs.to(weight.dtype)
                if grad_h is not None:
                    grad_h[start:start + CHUNK] = g @ weight
                if grad_w is not None:
                    if grad_w.dtype == g.dtype == h.dtype:
                        grad_w.addmm_(g.t(), h)  # accumulate in place: no [vocab x hidden] temporary per chunk
                    else:
                        grad_w += (g.t() @ h.to(weight.dtype)).float()
        ctx.save_for_backward(*(x for x in (grad_h, grad_w) if x is not None))
        ctx.has = (need_h, need_w)
        ctx.weight_dtype = weight.dtype
        return loss

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        # The gradients were computed in the forward and are needed once: scale them in place rather
        # than allocating a second [vocab x hidden] copy.
        saved = list(ctx.saved_tensors)
        grad_h = grad_w = None
        if ctx.has[0]:
            grad_h = saved.pop(0).mul_(grad_out)
        if ctx.has[1]:
            grad_w = saved.pop(0).mul_(grad_out).to(ctx.weight_dtype)
        return grad_h, grad_w, None


def fusable(lm: Any) -> bool:
    """Whether the head is a plain bias-free linear layer (no soft-capping or logit scaling)."""
    config = getattr(lm, "config", None)
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    if head is None or getattr(head, "bias", None) is not None or not hasattr(lm, "base_model"):
        return False
    return not getattr(config, "final_logit_softcapping", None) and getattr(config, "logits_scaling", 1.0) in (None, 1, 1.0)


class TrainModule(torch.nn.Module):
    """A causal LM whose forward returns (summed token loss, number of loss tokens)."""

    def __init__(self, lm: torch.nn.Module) -> None:
        super().__init__()
        self.lm: Any = lm  # a transformers PreTrainedModel (typed loosely: nn.Module attributes are dynamic)
        self.fused = fusable(lm)
        # Packed rows attend one sample at a time (labtax/train/attention.py) where the model packs at all.
        self.packed_attention = (getattr(getattr(lm, "config", None), "model_type", "") in PACKED_MODEL_TYPES
                                 and use_packed_attention(lm))

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, targets: torch.Tensor,
                attention_mask: torch.Tensor | None = None,
                log_probs: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed cross-entropy over the loss tokens, their number); with `log_probs`, instead of the
        loss, the fp32 log-probabilities over the vocabulary at those positions ([tokens x vocab]: phase
        1's anchor, labtax/train/anchor.py, reads them through here so that FSDP gathers the weights)."""
        kwargs: dict[str, Any] = {"input_ids": input_ids, "position_ids": position_ids, "use_cache": False}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
        elif self.packed_attention:
            kwargs["cu_seq_lens_q"] = sample_bounds(position_ids)
        flat_targets = targets.reshape(-1)
        keep = (flat_targets != IGNORE).nonzero().squeeze(1)
        n = keep.numel()
        if log_probs:
            if self.fused:
                hidden = self.lm.base_model(**kwargs).last_hidden_state
                hidden = hidden.reshape(-1, hidden.shape[-1])[keep]
                logits = (hidden @ self.lm.get_output_embeddings().weight.t()).float()
            else:
                logits = self.lm(**kwargs).logits.reshape(-1, self.lm.config.vocab_size)[keep].float()
            return torch.log_softmax(logits, dim=-1), torch.tensor(n)
        if self.fused:
            hidden = self.lm.base_model(**kwargs).last_hidden_state
            hidden = hidden.reshape(-1, hidden.shape[-1])[keep]
            weight = self.lm.get_output_embeddings().weight
            if n == 0:  # a no-op micro-batch: zero loss, but the graph still reaches every parameter
                return (hidden.sum() + weight.sum()) * 0.0, torch.tensor(0)
            return ChunkedLinearCrossEntropy.apply(hidden, weight, flat_targets[keep]), torch.tensor(n)
        logits = self.lm(**kwargs).logits.reshape(-1, self.lm.config.vocab_size).float()
        loss = F.cross_entropy(logits, flat_targets, ignore_index=IGNORE, reduction="sum")
        return (loss if n else logits.sum() * 0.0), torch.tensor(n)
