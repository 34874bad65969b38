"""Progress and verbosity (labtax/progress.py and the --quiet/--verbose every command has): a bar
with rate and ETA on a terminal, plain lines in a log, nothing when quiet."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from labtax import progress
from labtax.cli import cli

ROOT = Path(__file__).resolve().parents[1]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def normal_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress.ENV, "1")
    monkeypatch.delenv("CI", raising=False)


def test_plain_lines_with_rate_and_eta_in_a_log() -> None:
    log = io.StringIO()
    bar = progress.PlainProgress(10, "train knowledge", "step", log, every=0.0)
    for _ in range(4):
        bar.update()
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 5  # one per update (every=0) and the last at close
    assert lines[1].startswith("train knowledge: 2/10 step (20%), ") and " step/s, eta " in lines[1]
    assert progress.make_bar(3, "x", stream=io.StringIO()).__class__ is progress.PlainProgress


def test_a_terminal_gets_a_tqdm_bar_and_ci_gets_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    term = Terminal()
    with progress.bar(5, "eval scoring", "example", stream=term) as bar:
        assert isinstance(bar, progress.TqdmProgress)
        for _ in range(5):
            bar.update()
    shown = term.getvalue()
    assert "eval scoring" in shown and "100%" in shown and "5/5" in shown and "example/s" in shown
    monkeypatch.setenv("CI", "true")
    assert isinstance(progress.make_bar(5, "x", stream=Terminal()), progress.PlainProgress)


def test_quiet_says_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    progress.set_verbosity(progress.QUIET)
    with progress.bar(3, "x") as bar:
        bar.update(3)
    progress.note("hello")
    with progress.counting(2, "leaves", "leaf", lambda line: print(line, file=sys.stderr)) as tick:
        assert tick is not None
        tick("generated a")
    assert capsys.readouterr().err == "generated a\n"  # the item lines are results, kept; no bar


def test_every_command_has_quiet_and_verbose() -> None:
    for name, command in cli.commands.items():
        options = {opt for p in command.params for opt in getattr(p, "opts", [])}
        assert {"--quiet", "-q", "--verbose", "-v"} <= options, name


def test_quiet_and_verbose_on_the_command_line(git_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    git_repo.write("README.md", "x\n")
    git_repo.commit("init")
    runner = CliRunner()
    loud = runner.invoke(cli, ["diff", "--taxonomy", str(git_repo.root), "--base", "HEAD"])
    assert loud.exit_code == 0 and "no changed leaves" in loud.stderr
    quiet = runner.invoke(cli, ["diff", "--taxonomy", str(git_repo.root), "--base", "HEAD", "--quiet"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    both = runner.invoke(cli, ["diff", "-q", "-v"])
    assert both.exit_code == 2 and "exclude each other" in both.output


def test_train_verbose_and_quiet_levels_reach_the_training_lines(tmp_path: Path) -> None:
    from train_fixtures import invoke_cli, make_data_dir

    data = make_data_dir(tmp_path / "data", long_words=12)  # short answers: the lines are the point
    args = ["train", "--data", str(data), "--model", "tiny", "--phase", "knowledge", "--max-steps", "2",
            "--effective-batch", "8", "--max-seq-len", "512", "--max-tokens-per-batch", "1024",
            "--select", "last", "--report-to", "none"]
    quiet = invoke_cli([*args, "--output", str(tmp_path / "q"), "--quiet"])
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    # The one line left is the checkpoint (its sample count depends on how the schedule was fitted).
    assert "[knowledge]" not in quiet.stderr
    assert re.fullmatch(r".*/knowledge/checkpoints/samples_\d+", quiet.stdout.strip())
    plain = invoke_cli([*args, "--output", str(tmp_path / "p")])
    assert "[knowledge] step 2/2" in plain.stderr  # not a terminal: the step lines are the progress


def test_progress_module_is_light() -> None:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import labtax.progress"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    assert "tqdm" not in out.stderr and "torch" not in out.stderr


def test_the_generation_meter_prints_lines_while_nothing_finishes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A line from the timer thread (every `every` seconds) counting requests and tokens across leaves,
    with a rate and an ETA, although no leaf finished and no caller printed anything."""
    import threading

    from labtax.progress import GenerationMeter

    monkeypatch.delenv("CI", raising=False)
    stream = io.StringIO()
    meter = GenerationMeter(planned=10, stream=stream, every=0.01)
    meter.add(4, 640)
    meter.start()
    seen = threading.Event()
    for _ in range(500):
        if "requests" in stream.getvalue():
            seen.set()
            break
        threading.Event().wait(0.01)
    meter.stop()
    assert seen.is_set()
    line = stream.getvalue().splitlines()[0]
    assert line.startswith("teacher: 4/<=10 requests, 640 tokens, ") and "tokens/s" in line and "eta <=" in line


def test_metering_counts_an_in_process_teacher_and_records_its_rate(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from labtax import compute
    from labtax.progress import count_generation, metering
    from labtax.teachers.metered import record_rate

    monkeypatch.setenv("LABTAX_CACHE", str(tmp_path))
    monkeypatch.setenv("LABTAX_VERBOSITY", "0")  # quiet: counted, nothing printed
    count_generation(5, 5)  # outside a run: counted nowhere
    with metering(100) as meter:
        for _ in range(25):
            count_generation(1, 160)
    assert (meter.requests, meter.tokens, meter.live) == (25, 4000, True)
    record_rate(meter, "model-x")
    assert "seconds_per_request" in compute.cached_rate("model-x")  # the dry run's estimate reads it
