"""The fleet kept busy (issue 23 item 6): diff-generate keeps `--concurrency` requests in flight
against a slow server whatever the leaves' widths: a few leaves of few requests, or hundreds of
small leaves, with at most `--concurrency` leaves held in memory at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lab_taxonomy import add_skill, manifest, run_cli
from openai_server import OpenAIServer, lab_responder

# A leaf of few requests: one first-stage request asking for two questions, the fewest calibration items.
SMALL = ("--max-requests-per-leaf", "1", "--questions-per-request", "2", "--calibration-examples", "2")


def mean_in_flight(server: OpenAIServer) -> float:
    """Requests the server was handling, on average, from the first request's arrival to the last
    answer (each request's own start and finish, as the server recorded them)."""
    spans = [(r.started, r.finished) for r in server.requests if r.kind in ("chat", "completions")]
    busy = sum(b - a for a, b in spans)
    return busy / (max(b for _, b in spans) - min(a for a, _ in spans))


def generate(repo: Any, out: Path, server: OpenAIServer, concurrency: int, samples: int, small: tuple[str, ...] = ()) -> str:
    code, text = run_cli(["diff-generate", "--taxonomy", str(repo.root), "--base", "empty", "--output", str(out),
                          "--teacher", "openai", "--endpoint", server.base_url, "--model", "test-model",
                          "--samples-per-leaf", str(samples), "--seed", "7", "--concurrency", str(concurrency),
                          *small])
    assert code == 0, text
    return text


# ~2.5 minutes of wall clock (2,100 requests at 1 s each, 16 at a time; at 2 s each it took 4.5), ~12 s of
# CPU. A second still dwarfs the client's turnaround between two requests of a slot, so the scheduler is
# what is measured: that turnaround was ~30 ms at load 5 on 2 cores (0.5 s: a mean of 15.1 in flight
# against the 14.4 asked) and ~95 ms at load 11 (2 s: 15.28, docs/sdg.md), where 0.5 s would fall to
# ~13.5 and 1 s stays above the bar (~14.6).
@pytest.mark.slow
def test_three_hundred_small_leaves_keep_the_concurrency_in_flight(git_repo: Any, tmp_path: Path) -> None:
    for i in range(300):
        add_skill(git_repo, f"compositional_skills/t{i:03d}/leaf", topic=f"t{i:03d}")
    git_repo.commit("300 leaves")
    concurrency = 16
    with OpenAIServer(responder=lab_responder(), model="test-model", delay_ms=1000) as server:
        generate(git_repo, tmp_path / "out", server, concurrency, samples=1, small=SMALL)
        mean = mean_in_flight(server)
        print(f"300 leaves: {server.count()} requests, mean in flight {mean:.2f}, peak {server.max_in_flight}")
        assert server.max_in_flight <= concurrency
        assert mean >= 0.9 * concurrency, mean
    assert sum(e["status"] == "generated" for e in manifest(tmp_path / "out")["leaves"]) == 300


def test_two_leaves_of_few_requests_fill_the_concurrency_they_can(git_repo: Any, tmp_path: Path) -> None:
    for i in range(2):
        add_skill(git_repo, f"compositional_skills/t{i:03d}/leaf", topic=f"t{i:03d}")
    git_repo.commit("2 leaves")
    concurrency = 4
    with OpenAIServer(responder=lab_responder(), model="test-model", delay_ms=150) as server:
        generate(git_repo, tmp_path / "out", server, concurrency, samples=1, small=SMALL)
        mean = mean_in_flight(server)
        print(f"2 leaves: {server.count()} requests, mean in flight {mean:.2f}, peak {server.max_in_flight}")
        # 7 requests a leaf, in a chain of stages: the concurrency is reached, never passed; the mean
        # is bound by the chain (a judge waits for its question), not by the scheduler.
        assert server.max_in_flight == concurrency
    assert sum(e["status"] == "generated" for e in manifest(tmp_path / "out")["leaves"]) == 2
