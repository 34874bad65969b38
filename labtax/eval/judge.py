"""The pairwise judge: base and candidate answer each held-out question (greedy, bounded length), and a
judge model (any OpenAI-compatible endpoint, or the embedded teacher) compares the two answers against
the reference, in both orders (base first, then candidate first) so a position bias cancels out.

The judge ends its reply with [[A]], [[B]] or [[C]] (tie); the last such mark counts. A reply without
one is *malformed*, a request the client gave up on is *failed*; both are counted and leave that order
out. Per question the candidate scores the mean over its readable orders of 1 (won), 0.5 (tie) or 0
(lost); a question with no readable order is left out. The win rate is the mean over the questions.
The prompt is a data file, `labtax/eval/prompts/pairwise.yaml`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from labtax.eval.data import Example
from labtax.models import render_chat
from labtax.teachers.base import Teacher, TeacherRequest, TeacherResponse

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_MAX_NEW_TOKENS = 128
DEFAULT_JUDGE_MAX_TOKENS = 512
JUDGE_TAG = "eval_pairwise"
PROMPT_FILE = Path(__file__).parent / "prompts" / "pairwise.yaml"
_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@cache
def _prompt() -> tuple[str, str]:
    data = yaml.safe_load(PROMPT_FILE.read_text(encoding="utf-8"))
    return str(data["system"]).strip(), str(data["user"]).strip()


def _fill(template: str, values: dict[str, str]) -> str:
    # One pass: an answer that itself contains "{question}" is never expanded again.
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def parse_verdict(text: str) -> str | None:
    """'A', 'B' or 'C' (tie): the last [[X]] mark of the reply; None when there is none."""
    found = _VERDICT.findall(text)
    return found[-1] if found else None


def pairwise_request(example: Example, answer_a: str, answer_b: str, *,
                     max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS) -> TeacherRequest:
    system, user = _prompt()
    values = {"question": example.question(), "reference": example.answer, "answer_a": answer_a,
              "answer_b": answer_b}
    return TeacherRequest(
        messages=(("system", system), ("user", _fill(user, values))),
        max_tokens=max_tokens,
        temperature=0.0,  # a judge should be as repeatable as the server allows
        seed=0,
        tag=JUDGE_TAG,
    )


@dataclass(frozen=True)
class PairTally:
    """One leaf's pairwise results: per question score (None: no readable order), and the counts."""

    scores: tuple[float | None, ...]
    wins: int  # orders the candidate won
    ties: int
    losses: int
    malformed: int
    failed: int

    @property
    def readable(self) -> list[float]:
        return [s for s in self.scores if s is not None]


def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = 8,
) -> list[str]:
    """Greedy answers, batched with left padding (generation appends on the right)."""
    import torch

    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    prompts = [
        list(tokenizer(render_chat(tokenizer, ex.prompt_messages(), add_generation_prompt=True),
                       add_special_tokens=False)["input_ids"])
        for ex in examples
    ]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    answers: list[str] = [""] * len(prompts)
    with torch.inference_mode():
        for lo in range(0, len(order), batch_size):
            batch = order[lo: lo + batch_size]
            width = max(len(prompts[i]) for i in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i], dtype=torch.long)
                mask[row, width - len(prompts[i]):] = 1
            out = model.generate(  # type: ignore[operator]
                input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                do_sample=False, pad_token_id=pad_id, eos_token_id=tokenizer.eos_token_id,
            )
            for row, i in enumerate(batch):
                answers[i] = str(tokenizer.decode(out[row, width:], skip_special_tokens=True)).strip()
    return answers


def _outcome(response: TeacherResponse, candidate_is: str) -> float | str:
    if not response.ok:
        return "failed"
    verdict = parse_verdict(response.text)
    if verdict is None:
        return "malformed"
    if verdict == "C":
        return 0.5
    return 1.0 if verdict == candidate_is else 0.0


def judge_pairs(
    teacher: Teacher,
    examples: Sequence[Example],
    base_answers: Sequence[str],
    cand_answers: Sequence[str],
    *,
    max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS,
) -> list[tuple[float | str, float | str]]:
    """Per question (candidate's score with the base shown first, with the candidate shown first);
    each 1, 0.5, 0, "malformed" or "failed". One batch, one event loop; closes `teacher`."""
    requests = []
    for ex, b, c in zip(examples, base_answers, cand_answers):
        requests.append(pairwise_request(ex, b, c, max_tokens=max_tokens))  # base is A
        requests.append(pairwise_request(ex, c, b, max_tokens=max_tokens))  # candidate is A

    # A client's HTTP session belongs to the loop it was opened on: requests and close share one.
    async def run() -> list[TeacherResponse]:
        try:
            return await teacher.complete(requests)
        finally:
            await teacher.aclose()

    responses = asyncio.run(run()) if requests else []
    return [(_outcome(responses[2 * i], "B"), _outcome(responses[2 * i + 1], "A")) for i in range(len(examples))]


def tally(results: Sequence[tuple[float | str, float | str]]) -> PairTally:
    scores: list[float | None] = []
    outcomes = [o for pair in results for o in pair]
    for pair in results:
        readable = [float(o) for o in pair if not isinstance(o, str)]
        scores.append(sum(readable) / len(readable) if readable else None)
    return PairTally(
        scores=tuple(scores),
        wins=sum(1 for o in outcomes if o == 1.0 and not isinstance(o, str)),
        ties=sum(1 for o in outcomes if o == 0.5 and not isinstance(o, str)),
        losses=sum(1 for o in outcomes if o == 0.0 and not isinstance(o, str)),
        malformed=outcomes.count("malformed"),
        failed=outcomes.count("failed"),
    )
