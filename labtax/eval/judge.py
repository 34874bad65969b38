"""The optional judge: each model answers the held-out questions (greedy, bounded length) and an
OpenAI-compatible judge model rates each answer 1-10 against the reference answer.

The prompt is the MT-Bench reference-guided single-answer grading prompt; the judge must end with
`[[N]]`. A reply without a readable rating in 1..10 is counted as malformed and left out of the
mean; a request the client gave up on (ok=False) is counted as failed. Neither stops the run: the
gate is decided by the log-likelihood scores, the judge scores are reported beside them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from labtax.eval.data import Example
from labtax.models import render_chat
from labtax.teachers.base import Teacher, TeacherRequest, TeacherResponse

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_MAX_NEW_TOKENS = 128
DEFAULT_JUDGE_MAX_TOKENS = 512
JUDGE_TAG = "eval_judge"

JUDGE_SYSTEM = "You are a helpful assistant."
JUDGE_TEMPLATE = """[Instruction]
Please act as an impartial judge and evaluate the quality of the response provided by an AI \
assistant to the user question displayed below. Your evaluation should consider correctness and \
helpfulness. You will be given a reference answer and the assistant's answer. Begin your evaluation \
by comparing the assistant's answer with the reference answer. Identify and correct any mistakes. Be \
as objective as possible. After providing your explanation, you must rate the response on a scale of \
1 to 10 by strictly following this format: "[[rating]]", for example: "Rating: [[5]]".

[Question]
{question}

[The Start of Reference Answer]
{reference}
[The End of Reference Answer]

[The Start of Assistant's Answer]
{answer}
[The End of Assistant's Answer]"""

_BRACKETED = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_LABELLED = re.compile(r"rating\s*[:=]\s*\**\s*(\d+(?:\.\d+)?)", re.IGNORECASE)


@dataclass(frozen=True)
class JudgeTally:
    """One model's judge results on one leaf."""

    scores: tuple[float, ...]  # the readable ratings
    malformed: int  # replies without a rating in 1..10
    failed: int  # requests the client gave up on

    @property
    def mean(self) -> float | None:
        return sum(self.scores) / len(self.scores) if self.scores else None


def parse_rating(text: str) -> float | None:
    """The judge's rating: the last `[[N]]`, else the last `Rating: N`; None unless 1 <= N <= 10."""
    for pattern in (_BRACKETED, _LABELLED):
        found = pattern.findall(text)
        if found:
            value = float(found[-1])
            return value if 1.0 <= value <= 10.0 else None
    return None


def judge_request(example: Example, answer: str, *, max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS) -> TeacherRequest:
    prompt = JUDGE_TEMPLATE.format(question=example.question(), reference=example.answer, answer=answer)
    return TeacherRequest(
        messages=(("system", JUDGE_SYSTEM), ("user", prompt)),
        max_tokens=max_tokens,
        temperature=0.0,  # a judge should be as repeatable as the server allows
        seed=0,
        tag=JUDGE_TAG,
    )


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


def judge_answers(
    teacher: Teacher,
    examples: Sequence[Example],
    answers: Sequence[str],
    *,
    max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS,
) -> list[float | str]:
    """Each answer's rating, or "malformed" / "failed", in input order. Closes `teacher`."""
    requests = [judge_request(ex, ans, max_tokens=max_tokens) for ex, ans in zip(examples, answers)]

    # One event loop for every request and the close: a client's HTTP session belongs to the loop
    # it was opened on. The teacher is closed here; it is not reusable afterwards.
    async def run() -> list[TeacherResponse]:
        try:
            return await teacher.complete(requests)
        finally:
            await teacher.aclose()

    responses = asyncio.run(run())
    results: list[float | str] = []
    for response in responses:
        if not response.ok:
            results.append("failed")
            continue
        rating = parse_rating(response.text)
        results.append(rating if rating is not None else "malformed")
    return results


def tally(results: Sequence[float | str]) -> JudgeTally:
    return JudgeTally(
        scores=tuple(float(r) for r in results if not isinstance(r, str)),
        malformed=sum(1 for r in results if r == "malformed"),
        failed=sum(1 for r in results if r == "failed"),
    )
