"""labtax's own generation loop (teachers/decode.py) with embedded-small's real tokenizer and weights:
greedy text equals `model.generate`'s on a left-padded batch, prompts of very different lengths and
a shared prefix included; a stop string ends its row early; a request's sampled text does not depend
on its batch mates."""

from __future__ import annotations

import asyncio

import pytest

from labtax.teachers.base import TeacherRequest

torch = pytest.importorskip("torch")

SYSTEM = "You are a careful assistant. Answer in one or two short sentences."
QUESTIONS = ["What is the capital of France?",
             "Name two planets of the solar system and say which one is bigger, with a short reason why.",
             "What is 2 + 2?",
             "Why is the sky blue? Explain it to a child."]


def _request(question: str, **kw: object) -> TeacherRequest:
    return TeacherRequest(messages=(("system", SYSTEM), ("user", question)), **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def teacher() -> object:
    from labtax.teachers.transformers import TransformersTeacher

    torch.set_num_threads(1)
    return TransformersTeacher("embedded-small", batch_size=8, threads=1)


def test_greedy_text_equals_model_generate(teacher: object) -> None:
    t = teacher
    # 12 new tokens (each a forward of the whole batch, ~0.1 CPU-s): rows of prompts 35-48 tokens long,
    # left-padded to one width, decode a dozen steps past the padding, at half the CPU of 24.
    requests = [_request(q, max_tokens=12, temperature=0.0) for q in QUESTIONS]
    mine = asyncio.run(t.complete(requests))  # type: ignore[attr-defined]
    prompts = [t.render(r) for r in requests]  # type: ignore[attr-defined]
    enc = t.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)  # type: ignore[attr-defined]
    with torch.inference_mode():
        out = t.model.generate(**enc, max_new_tokens=12, do_sample=False, temperature=None, top_p=None,  # type: ignore[attr-defined]
                               top_k=None, pad_token_id=t.tokenizer.pad_token_id)  # type: ignore[attr-defined]
    width = enc["input_ids"].shape[1]
    for resp, row in zip(mine, out):
        new = row[width:].tolist()
        eos = [i for i, tok in enumerate(new) if tok in t._eos]  # type: ignore[attr-defined]
        expected = t.tokenizer.decode(new[: eos[0]] if eos else new, skip_special_tokens=True).strip()  # type: ignore[attr-defined]
        assert resp.ok and resp.text == expected
        assert resp.finish_reason == ("stop" if eos else "length")
        assert resp.completion_tokens == (eos[0] if eos else 12)


def test_a_stop_string_ends_its_row_early(teacher: object) -> None:
    t = teacher
    free = asyncio.run(t.complete([_request(QUESTIONS[3], max_tokens=24, temperature=0.0)]))[0]  # type: ignore[attr-defined]
    words = free.text.split()
    assert len(words) > 4
    stop = f" {words[2]}"
    cut = asyncio.run(t.complete([_request(QUESTIONS[3], max_tokens=24, temperature=0.0, stop=(stop,))]))[0]  # type: ignore[attr-defined]
    assert cut.finish_reason == "stop" and free.text.startswith(cut.text) and stop not in cut.text
    assert cut.completion_tokens < free.completion_tokens  # no steps spent after the stop string


def test_sampled_rows_do_not_depend_on_their_batch(teacher: object) -> None:
    t = teacher
    # 8 sampled tokens: two seeds' texts and their batch mates' part within a few (one forward each).
    mine = [_request(QUESTIONS[0], max_tokens=8, temperature=0.8, top_p=0.9, seed=s) for s in (1, 2)]
    others = [_request(q, max_tokens=8, temperature=0.8, top_p=0.9, seed=9) for q in QUESTIONS[1:]]
    alone = [r.text for r in asyncio.run(t.complete(mine))]  # type: ignore[attr-defined]
    mixed = [r.text for r in asyncio.run(t.complete([others[0], mine[0], others[1], mine[1], others[2]]))]  # type: ignore[attr-defined]
    assert [mixed[1], mixed[3]] == alone


def test_continuous_batching_refills_slots_and_keeps_each_rows_text(teacher: object) -> None:
    """Two slots for six rows of different prompt lengths and token budgets: finished rows' slots are
    refilled (a longer prompt arriving widens the batch's cache), rows arriving later through `more`
    join, and every row's greedy tokens equal the row generated alone."""
    from labtax.teachers import decode

    t = teacher
    # The long prompt (82 tokens, the others 29-48) arrives later: it must widen the batch's cache.
    questions = [*QUESTIONS, "Write a long, careful answer: " + " ".join(QUESTIONS), "Hi"]
    ids = [t.tokenizer(t.render(_request(q)), add_special_tokens=False)["input_ids"]  # type: ignore[attr-defined]
           for q in questions]
    # Budgets of 2-10 tokens: rows still finish at different steps, so slots free up and refill (each
    # row also runs alone: 35 forwards there instead of 67 with budgets of 3-20).
    rows = [decode.Row(list(x), max_new) for x, max_new in zip(ids, (6, 2, 10, 4, 8, 5))]

    def greedy(logits: object, active: list[int]) -> object:
        return logits.argmax(dim=-1)  # type: ignore[attr-defined]

    def run_rows(todo: list[decode.Row], width: int, later: list[decode.Row]) -> list[list[int]]:
        finished: list[int] = []
        pending = [later]

        def more() -> list[decode.Row]:
            return pending.pop() if pending else []

        with torch.inference_mode():
            out = decode.generate(t.model, todo, eos=t._eos, pick=greedy, text_of=lambda _: "",  # type: ignore[attr-defined]
                                  batch_size=width, more=more, on_done=lambda i, _g: finished.append(i))
        assert sorted(finished) == list(range(len(todo) + len(later)))
        return [o.tokens for o in out]

    alone = [run_rows([r], 1, [])[0] for r in rows]
    batched = run_rows(rows[:4], 2, rows[4:])
    assert batched == alone
    assert all(len(x) <= r.max_new for x, r in zip(batched, rows)) and any(len(x) == r.max_new for x, r in zip(batched, rows))


def test_bf16_weights_with_fp32_compute_decode_like_model_generate(teacher: object) -> None:
    """`--dtype bf16-fp32` (the 1.5B teacher's choice on an AVX2 CPU): the weights stay bf16, the KV
    cache is fp32, and greedy text equals `model.generate`'s on the same widened model."""
    from labtax.teachers.transformers import TransformersTeacher

    mixed = TransformersTeacher("embedded-small", batch_size=3, threads=1, dtype="bf16-fp32")
    linears = [m for m in mixed.model.modules() if isinstance(m, torch.nn.Linear)]
    assert all(m.weight.dtype == torch.bfloat16 for m in linears)
    assert mixed.kv_token_bytes == teacher.kv_token_bytes  # type: ignore[attr-defined]  # fp32 both
    requests = [_request(q, max_tokens=8, temperature=0.0) for q in QUESTIONS]
    mine = asyncio.run(mixed.complete(requests))
    enc = mixed.tokenizer([mixed.render(r) for r in requests], return_tensors="pt", padding=True,
                          add_special_tokens=False)
    with torch.inference_mode():
        out = mixed.model.generate(**enc, max_new_tokens=8, do_sample=False, temperature=None, top_p=None,
                                   top_k=None, pad_token_id=mixed.tokenizer.pad_token_id)
    width = enc["input_ids"].shape[1]
    for resp, row in zip(mine, out):
        new = row[width:].tolist()
        eos = [i for i, tok in enumerate(new) if tok in mixed._eos]
        assert resp.ok and resp.text == mixed.tokenizer.decode(new[: eos[0]] if eos else new,
                                                                skip_special_tokens=True).strip()
