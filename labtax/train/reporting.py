"""Where a training run reports its metrics, as `transformers` does with `report_to`.

Every record the loop writes to `<phase>/metrics.jsonl` also goes to the chosen trackers, on rank 0
only: per step the loss, learning rate, gradient norm and tokens/s; per checkpoint the held-out
loss. TensorBoard event files go to `OUTPUT/tensorboard/<phase>/` (`tensorboard --logdir
OUTPUT/tensorboard`); Weights & Biases and MLflow get one run per phase, configured the way those
tools are (WANDB_PROJECT, MLFLOW_TRACKING_URI, ...). After a phase, `loss.png` in its folder plots
the loss from metrics.jsonl with matplotlib.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from labtax.errors import UsageError
from labtax.progress import QUIET, VERBOSE, interactive, make_bar, verbosity

TARGETS = ("tensorboard", "wandb", "mlflow", "none")
STEP_SCALARS = {"loss": "train/loss", "lr": "train/learning_rate", "grad_norm": "train/grad_norm",
                "tokens_per_s": "train/tokens_per_second"}
_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def available(target: str) -> bool:
    return importlib.util.find_spec(_PACKAGES[target]) is not None


def resolve_report_to(value: str | None) -> list[str]:
    """The trackers for `--report-to` (comma-separated; unset: tensorboard when it is installed)."""
    if value is None:
        return ["tensorboard"] if available("tensorboard") else []
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in TARGETS]
    if unknown or not names:
        raise UsageError(f"--report-to: unknown target {', '.join(unknown) or repr(value)} "
                         f"(choose from {', '.join(TARGETS)})")
    if "none" in names:
        if len(names) > 1:
            raise UsageError("--report-to none cannot be combined with another target")
        return []
    for name in names:
        if not available(name):
            extra = " (part of labtax[train])" if name == "tensorboard" else ""
            raise UsageError(f"--report-to {name}: the {_PACKAGES[name]} package is not installed",
                             hint=f"pip install {_PACKAGES[name]}{extra}")
    return names


class Tracker(Protocol):
    def log(self, scalars: dict[str, float], step: int) -> None: ...
    def close(self) -> None: ...


class TensorBoardTracker:
    def __init__(self, log_dir: Path, first_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: after a resume, events a killed run wrote past the restored step are dropped,
        # as the metrics.jsonl lines are.
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=first_step)

    def log(self, scalars: dict[str, float], step: int) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    def __init__(self, phase: str, run_dir: Path, config: dict[str, Any]) -> None:
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project=None, name=f"{run_dir.name}-{phase}", group=run_dir.name,
                              dir=str(run_dir), config=config, reinit=True)

    def log(self, scalars: dict[str, float], step: int) -> None:
        self.run.log(scalars, step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowTracker:
    def __init__(self, phase: str, run_dir: Path, config: dict[str, Any]) -> None:
        import mlflow

        self.mlflow = mlflow
        self.run = mlflow.start_run(run_name=f"{run_dir.name}-{phase}")
        mlflow.log_params(_flat(config))

    def log(self, scalars: dict[str, float], step: int) -> None:
        self.mlflow.log_metrics({k.replace("/", "_"): v for k, v in scalars.items()}, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class PhaseReporter:
    """Receives the loop's metric records (`record`) and fans them out to the trackers, which are
    opened on the first step record so that a resumed run knows its first step. On a terminal it
    also draws a progress bar over the phase's `total_steps` (labtax.progress), and `filtered(log)`
    then keeps the per-step lines out of the way of the bar (they stay with --verbose, and in logs,
    where they are the progress lines)."""

    def __init__(self, targets: list[str], phase: str, run_dir: Path, config: dict[str, Any],
                 total_steps: int | None = None) -> None:
        self.targets, self.phase, self.run_dir, self.config = targets, phase, run_dir, config
        self.trackers: list[Tracker] | None = None
        self.total_steps = total_steps
        self.bar: Any = None

    def filtered(self, log: Callable[[str], None]) -> Callable[[str], None]:
        def emit(line: str) -> None:
            if self.bar is None:
                log(line)
            elif not line.startswith(f"[{self.phase}] step ") or verbosity() >= VERBOSE:
                self.bar.write(line)

        return emit

    def _advance(self, step: int) -> None:
        if self.bar is None and self.total_steps and interactive() and verbosity() > QUIET:
            self.bar = make_bar(self.total_steps, f"train {self.phase}", "step", initial=step - 1)
        if self.bar is not None and step > self.bar.n:
            self.bar.update(step - self.bar.n)

    def _open(self, first_step: int) -> list[Tracker]:
        trackers: list[Tracker] = []
        for target in self.targets:
            if target == "tensorboard":
                trackers.append(TensorBoardTracker(self.run_dir / "tensorboard" / self.phase, first_step))
            elif target == "wandb":
                trackers.append(WandbTracker(self.phase, self.run_dir, self.config))
            elif target == "mlflow":
                trackers.append(MlflowTracker(self.phase, self.run_dir, self.config))
        return trackers

    def record(self, record: dict[str, Any]) -> None:
        event, step = record.get("event"), record.get("step")
        if event == "step" and isinstance(step, int):
            self._advance(step)
            scalars = {name: float(record[key]) for key, name in STEP_SCALARS.items() if key in record}
        elif event == "checkpoint" and isinstance(step, int) and _finite(record.get("test_loss")):
            scalars = {"eval/test_loss": float(record["test_loss"])}
        else:
            return
        if self.trackers is None:
            self.trackers = self._open(step)
        for tracker in self.trackers:
            tracker.log(scalars, step)

    def close(self) -> None:
        for tracker in self.trackers or []:
            tracker.close()
        self.trackers = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def read_curve(metrics: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, loss) of every step and (step, test loss) of every checkpoint in a metrics.jsonl."""
    train: dict[int, float] = {}
    test: dict[int, float] = {}
    for line in metrics.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill
        step = record.get("step")
        if record.get("event") == "step" and _finite(record.get("loss")):
            train[int(step)] = float(record["loss"])
        elif record.get("event") == "checkpoint" and _finite(record.get("test_loss")):
            test[int(step)] = float(record["test_loss"])
    return sorted(train.items()), sorted(test.items())


def plot_loss(metrics: Path, target: Path, title: str) -> Path | None:
    """Write `target` (PNG) with the training loss per step and the held-out loss per checkpoint;
    None when matplotlib is missing or there is no step yet."""
    if importlib.util.find_spec("matplotlib") is None or not metrics.is_file():
        return None
    train, test = read_curve(metrics)
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display on a training node
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.add_subplot()
    ax.plot([s for s, _ in train], [v for _, v in train], label="train loss (token mean)", linewidth=1.2)
    if test:
        ax.plot([s for s, _ in test], [v for _, v in test], "o--", label="held-out loss (the selection split)", linewidth=1.0)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = target.with_name(f".{target.name}.tmp")
    fig.savefig(tmp, format="png")
    tmp.replace(target)
    return target


def _sampled(points: list[tuple[int, float]], most: int = 60) -> list[tuple[int, float]]:
    """At most `most` points, evenly spread, the last always kept (a chart, not a table)."""
    if len(points) <= most:
        return points
    stride = len(points) / most
    picked = [points[int(i * stride)] for i in range(most - 1)]
    return picked + [points[-1]]


def loss_markdown(metrics: Path, title: str) -> str | None:
    """A job-summary section: a Mermaid line chart of the loss (GitHub renders it) and the figures."""
    if not metrics.is_file():
        return None
    train, test = read_curve(metrics)
    if not train:
        return None
    points = _sampled(train)
    lines = [f"### {title}", "", "```mermaid", "xychart-beta", f'    title "{title}: training loss"',
             f"    x-axis \"optimizer step\" [{', '.join(str(s) for s, _ in points)}]",
             '    y-axis "loss"', f"    line [{', '.join(f'{v:.4f}' for _, v in points)}]", "```", "",
             f"{len(train)} steps: loss {train[0][1]:.4f} at step {train[0][0]} → {train[-1][1]:.4f} at step "
             f"{train[-1][0]}" + (f"; held-out loss per checkpoint (validation.jsonl; test.jsonl only for data "
                                  f"without a validation split): "
                                  f"{', '.join(f'{v:.4f} (step {s})' for s, v in test)}" if test else "") + ".",
             ""]
    return "\n".join(lines)


def finish_phase(phase_dir: Path, phase: str) -> Path | None:
    """After a phase: `loss.png` (matplotlib) and `loss.md` (for the workflow's job summary) in its
    folder, from its metrics.jsonl. Returns the PNG's path when one was written."""
    metrics = phase_dir / "metrics.jsonl"
    text = loss_markdown(metrics, f"labtax train: {phase}")
    if text is not None:
        (phase_dir / "loss.md").write_text(text, encoding="utf-8")
    return plot_loss(metrics, phase_dir / "loss.png", f"labtax train: {phase}")
