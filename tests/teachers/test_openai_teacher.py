"""The openai teacher against a real HTTP server on 127.0.0.1: faults, retries, concurrency, balance."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from openai_server import Fault, OpenAIServer, Reply, fail_first, lab_responder
from sdgleaves import run

from labtax.errors import TeacherError, UsageError
from labtax.teachers import make_teacher
from labtax.teachers.base import TeacherRequest
from labtax.teachers.openai import OpenAITeacher, normalize_endpoint, render_plain_prompt


def _requests(n: int, tag: str = "t") -> list[TeacherRequest]:
    return [
        TeacherRequest(messages=(("system", "sys"), ("user", f"request number {i}")), seed=i, tag=tag)
        for i in range(n)
    ]


def _echo(kind: str, body: dict[str, Any]) -> str:
    msgs = body.get("messages") or [{"content": body.get("prompt", "")}]
    return "echo: " + msgs[-1]["content"]


def _teacher(server: OpenAIServer, **kw: Any) -> OpenAITeacher:
    kw.setdefault("model", "test-model")
    teacher = make_teacher("openai", endpoints=[server.base_url], **kw)
    assert isinstance(teacher, OpenAITeacher)
    teacher.backoff_base = 0.01  # keep the tests quick; the schedule itself is the same
    return teacher


async def _complete(teacher: OpenAITeacher, reqs: list[TeacherRequest]) -> list[Any]:
    try:
        return await teacher.complete(reqs)
    finally:
        await teacher.aclose()


def test_chat_answers_in_request_order_with_usage_and_seed() -> None:
    with OpenAIServer(_echo) as server:
        teacher = _teacher(server)
        out = run(_complete(teacher, _requests(20)))
    assert [r.text for r in out] == [f"echo: request number {i}" for i in range(20)]
    assert all(r.ok and r.finish_reason == "stop" and r.completion_tokens > 0 for r in out)
    bodies = sorted(server.requests, key=lambda r: r.body["seed"])
    assert [b.body["seed"] for b in bodies] == list(range(20))
    assert bodies[0].body["model"] == "test-model"
    assert bodies[0].body["messages"][0] == {"role": "system", "content": "sys"}
    assert all(r.path == "/v1/chat/completions" for r in server.requests)


def test_completions_endpoint_renders_messages_into_a_prompt() -> None:
    with OpenAIServer(_echo) as server:
        teacher = _teacher(server, completions=True)
        out = run(_complete(teacher, _requests(2)))
    assert server.count("completions") == 2 and server.count("chat") == 0
    body = server.requests[0].body
    assert body["prompt"] == render_plain_prompt((("system", "sys"), ("user", body["prompt"].split("\n")[4])))
    assert body["prompt"].endswith("### Assistant:\n")
    assert "### User:" in body["stop"]
    assert all(r.ok and r.text.startswith("echo: ### System:") for r in out)


def test_model_discovered_from_v1_models_and_endpoint_normalised() -> None:
    with OpenAIServer(_echo, model="served-model") as server:
        teacher = make_teacher("openai", endpoints=[server.url])  # no /v1: appended
        assert teacher.model_id == "openai:served-model"
        run(_complete(teacher, _requests(1)))
    assert server.requests[0].body["model"] == "served-model"
    assert normalize_endpoint("http://h:1/") == "http://h:1/v1"
    assert normalize_endpoint("http://h:1/api/v1") == "http://h:1/api/v1"
    with pytest.raises(UsageError):
        normalize_endpoint("h:1")


def test_unreachable_endpoint_model_discovery_is_a_teacher_error() -> None:
    with OpenAIServer() as server:
        url = server.base_url
    with pytest.raises(TeacherError):
        make_teacher("openai", endpoints=[url], timeout=2)


def test_concurrency_bound_is_honoured() -> None:
    with OpenAIServer(_echo, delay_ms=30) as server:
        teacher = _teacher(server, concurrency=4)
        out = run(_complete(teacher, _requests(40)))
    assert all(r.ok for r in out)
    assert server.max_in_flight <= 4
    assert server.max_in_flight >= 2  # it does run requests concurrently


def test_endpoints_are_balanced_by_outstanding_requests() -> None:
    with OpenAIServer(_echo, delay_ms=20) as a, OpenAIServer(_echo, delay_ms=20) as b, \
            OpenAIServer(_echo, delay_ms=20) as c:
        teacher = make_teacher("openai", endpoints=[a.base_url, b.base_url, c.base_url], model="m",
                               concurrency=6)
        out = run(_complete(teacher, _requests(60)))
    assert all(r.ok for r in out)
    counts = [a.count(), b.count(), c.count()]
    assert sum(counts) == 60
    assert min(counts) >= 15, counts  # an even spread is 20 each


def test_slow_endpoint_gets_fewer_requests() -> None:
    with OpenAIServer(_echo, delay_ms=5) as fast, OpenAIServer(_echo, delay_ms=150) as slow:
        teacher = make_teacher("openai", endpoints=[fast.base_url, slow.base_url], model="m", concurrency=4)
        run(_complete(teacher, _requests(60)))
    assert fast.count() > slow.count()


def test_faults_are_retried_and_nothing_is_lost() -> None:
    """500s, 429 with Retry-After, malformed JSON, a timeout: every request still gets its answer."""
    responder = fail_first(_echo, Fault(500), match=lambda k, b: b["seed"] % 4 == 0)
    responder = fail_first(responder, Fault(429, {"Retry-After": "0.2"}), match=lambda k, b: b["seed"] % 4 == 1)
    responder = fail_first(responder, Fault(200, body="{not json"), match=lambda k, b: b["seed"] % 4 == 2)
    responder = fail_first(responder, Fault(sleep=3.0, then="late"), match=lambda k, b: b["seed"] == 3)
    with OpenAIServer(responder) as server:
        teacher = _teacher(server, timeout=1.0)
        out = run(_complete(teacher, _requests(12)))
    assert [r.text for r in out] == [f"echo: request number {i}" for i in range(12)]
    assert all(r.ok for r in out)
    assert teacher.faults["status 500"] == 3
    assert teacher.faults["status 429"] == 3
    assert teacher.faults["malformed body"] == 3
    assert teacher.faults["timeout"] == 1
    assert teacher.retries == 10


def test_retry_after_header_is_honoured() -> None:
    responder = fail_first(_echo, Fault(429, {"Retry-After": "1"}))
    with OpenAIServer(responder) as server:
        teacher = _teacher(server)
        out = run(_complete(teacher, _requests(1)))
    assert out[0].ok
    first, second = server.requests
    assert second.started - first.started >= 0.9  # the jittered back-off alone would be ~0.01 s


def test_persistent_failure_costs_only_that_request() -> None:
    def responder(kind: str, body: dict[str, Any]) -> Any:
        return Fault(503) if body["seed"] == 1 else _echo(kind, body)

    with OpenAIServer(responder) as server:
        teacher = _teacher(server)
        teacher.max_retries = 2
        out = run(_complete(teacher, _requests(3)))
    assert [r.ok for r in out] == [True, False, True]
    assert "status 503" in (out[1].error or "")
    assert server.status_counts[503] == 3


def test_client_error_is_not_retried() -> None:
    with OpenAIServer(lambda k, b: Fault(400)) as server:
        teacher = _teacher(server)
        out = run(_complete(teacher, _requests(1)))
    assert not out[0].ok and "status 400" in (out[0].error or "")
    assert server.count() == 1


def test_truncated_and_empty_answers_are_reported_as_such() -> None:
    def responder(kind: str, body: dict[str, Any]) -> Any:
        return Reply("half an ans", finish_reason="length") if body["seed"] == 0 else ""

    with OpenAIServer(responder) as server:
        out = run(_complete(_teacher(server), _requests(2)))
    assert out[0].finish_reason == "length" and out[0].text == "half an ans"
    assert out[1].ok and out[1].text == ""


def test_api_key_is_sent_but_never_shown(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    secret = "sk-very-secret-value-123"
    monkeypatch.setenv("LABTAX_TEST_KEY", secret)
    caplog.set_level(logging.DEBUG)
    responder = fail_first(lambda k, b: Fault(401), Fault(500))
    with OpenAIServer(responder) as server:
        teacher = _teacher(server, api_key_env="LABTAX_TEST_KEY")
        teacher.max_retries = 1
        out = run(_complete(teacher, _requests(1)))
    assert server.requests[0].headers["Authorization"] == f"Bearer {secret}"
    shown = repr(teacher) + repr(teacher.stats()) + str(out) + caplog.text
    captured = capsys.readouterr()
    assert secret not in shown + captured.out + captured.err


def test_missing_api_key_variable_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABTAX_NO_SUCH_KEY", raising=False)
    with pytest.raises(UsageError, match="LABTAX_NO_SUCH_KEY"):
        make_teacher("openai", endpoints=["http://127.0.0.1:9/v1"], model="m", api_key_env="LABTAX_NO_SUCH_KEY")


def test_lab_responder_is_usable_by_other_stages() -> None:
    """The shared responder answers an unrecognised prompt too (eval's judge falls back to it)."""
    with OpenAIServer(lab_responder()) as server:
        out = run(_complete(_teacher(server), _requests(1)))
    assert out[0].ok and out[0].text


def test_many_concurrent_batches_share_one_bound() -> None:
    with OpenAIServer(_echo, delay_ms=20) as server:
        teacher = _teacher(server, concurrency=3)

        async def go() -> list[list[Any]]:
            try:
                return await asyncio.gather(*(teacher.complete(_requests(6, tag=str(k))) for k in range(4)))
            finally:
                await teacher.aclose()

        outs = run(go())
    assert all(r.ok for out in outs for r in out)
    assert server.max_in_flight <= 3


def test_a_dead_endpoint_costs_retries_not_rows() -> None:
    with OpenAIServer() as dead:
        dead_url = dead.base_url  # stopped: connections are refused
    with OpenAIServer(_echo) as alive:
        teacher = make_teacher("openai", endpoints=[dead_url, alive.base_url], model="m", concurrency=4)
        teacher.backoff_base = 0.01  # type: ignore[attr-defined]
        out = run(_complete(teacher, _requests(12)))  # type: ignore[arg-type]
    assert all(r.ok for r in out) and alive.count() == 12
    assert any(reason.startswith("connection") for reason in teacher.faults)  # type: ignore[attr-defined]


def test_one_teacher_across_several_event_loops() -> None:
    with OpenAIServer(_echo) as server:
        teacher = _teacher(server)
        first = run(teacher.complete(_requests(2)))
        second = run(_complete(teacher, _requests(2)))  # a new loop, no aclose in between
    assert [r.text for r in first] == [r.text for r in second]
    assert all(r.ok for r in first + second)


def test_a_reply_over_the_size_cap_fails_its_row_saying_so() -> None:
    def responder(kind: str, body: dict[str, Any]) -> Any:
        return "x" * (3 * 2**20) if body["seed"] == 1 else _echo(kind, body)

    with OpenAIServer(responder) as server:
        teacher = _teacher(server)
        teacher.max_reply_bytes = 2**20  # 1 MiB here; 16 MiB by default
        out = run(_complete(teacher, _requests(3)))
    assert [r.ok for r in out] == [True, False, True]
    assert "larger than the 1,048,576-byte cap" in (out[1].error or "")
    assert teacher.faults["reply too large"] == 1 and server.count() == 3  # not retried: it would be as large


def test_a_refusing_endpoint_leaves_the_rotation_and_is_probed_again_later() -> None:
    with OpenAIServer() as dead:
        dead_url = dead.base_url  # stopped: connections are refused
    with OpenAIServer(_echo) as a, OpenAIServer(_echo) as b:
        teacher = make_teacher("openai", endpoints=[a.base_url, dead_url, b.base_url], model="m", concurrency=8)
        assert isinstance(teacher, OpenAITeacher)
        teacher.backoff_base = 0.01
        out = run(_complete(teacher, _requests(90)))
        first = teacher.sent[dead_url]
        # Out of the rotation after its first refusals: a fair share would be 30 of 90.
        assert all(r.ok for r in out) and a.count() + b.count() == 90
        assert 1 <= first <= 8, teacher.sent
        teacher._out_until = [0.0] * 3  # as if its back-off were over: the next batch probes it again
        out = run(_complete(teacher, _requests(90, tag="again")))
    assert all(r.ok for r in out)
    assert first < teacher.sent[dead_url] <= first + 8, teacher.sent


def test_a_request_backing_off_leaves_its_slot_to_others() -> None:
    # One request meets a 429 asking for 1 s; with concurrency 1 the other 5 run in that second.
    responder = fail_first(_echo, Fault(429, {"Retry-After": "1"}), match=lambda k, b: b["seed"] == 0)
    with OpenAIServer(responder) as server:
        teacher = _teacher(server, concurrency=1)
        out = run(_complete(teacher, _requests(6)))
    assert all(r.ok for r in out)
    order = [r.body["seed"] for r in sorted(server.requests, key=lambda r: r.started)]
    assert order[0] == 0 and order[-1] == 0, order  # its retry came after every other request
