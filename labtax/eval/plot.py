"""`eval.png`: per leaf, base vs candidate with the 95 % interval, changed leaves marked.

Two panels share the leaf axis: the per-token NLL of the reference answers (lower is better) and the
closed-book multiple-choice accuracy (higher is better). The base is a hollow circle, the candidate a
filled one with the interval of the change drawn around it (base + the change's bootstrap interval);
a changed leaf's name is bold, marked "(changed)" and its row shaded. matplotlib is imported only
here, with the file-only Agg backend (no display needed on a CI runner).
"""

from __future__ import annotations

from pathlib import Path

from labtax.eval.record import EvalReport, LeafRow

COLOURS = {"improved": "#1a7f37", "no-change": "#6e7781", "regressed": "#cf222e"}


def _nll_points(r: LeafRow) -> tuple[float, float, float, float] | None:
    """(base NLL, candidate NLL, interval low, interval high) of a row, or None."""
    if r.base is None or r.candidate is None:
        return None
    base, cand = -r.base, -r.candidate
    iv = r.likelihood.change_pct if r.likelihood is not None else None
    if iv is None or iv.low is None or iv.high is None:
        return base, cand, cand, cand
    return base, cand, base * (1 + iv.low / 100), base * (1 + iv.high / 100)


def _acc_points(r: LeafRow) -> tuple[float, float, float, float] | None:
    c = r.choices
    if not c:
        return None
    iv = c.change
    point = iv.estimate or 0.0
    low = c.base_accuracy + (iv.low if iv.low is not None else point)
    high = c.base_accuracy + (iv.high if iv.high is not None else point)
    return c.base_accuracy, c.candidate_accuracy, low, high


def plot_path(plot: str | None, output: str | None) -> Path | None:
    """Where the figure goes: --plot, else eval.png beside --output, else nowhere."""
    if plot is not None:
        return Path(plot)
    return Path(output).parent / "eval.png" if output is not None else None


def write_plot(report: EvalReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.leaves
    height = max(2.5, 0.45 * len(rows) + 1.4)
    fig, axes = plt.subplots(1, 2, figsize=(11, height), sharey=True)
    ys = list(range(len(rows)))[::-1]
    panels = ((axes[0], _nll_points, "per-token NLL of reference answers (lower is better)"),
              (axes[1], _acc_points, "closed-book multiple-choice accuracy (higher is better)"))
    for ax, points, title in panels:
        for y, r in zip(ys, rows):
            if r.changed:
                ax.axhspan(y - 0.45, y + 0.45, color="#fff8c5", zorder=0)
            p = points(r)
            if p is None:
                continue
            base, cand, low, high = p
            colour = COLOURS.get(r.verdict, "#6e7781")
            ax.plot([base, cand], [y, y], color=colour, linewidth=1, zorder=1)
            ax.plot([min(low, high), max(low, high)], [y, y], color=colour, linewidth=4, alpha=0.35, zorder=2)
            ax.scatter([base], [y], facecolors="white", edgecolors=colour, s=40, zorder=3)
            ax.scatter([cand], [y], color=colour, s=40, zorder=4)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[1].set_xlim(-0.05, 1.05)
    labels = [f"{r.leaf} (changed)" if r.changed else r.leaf for r in rows]
    axes[0].set_yticks(ys)
    axes[0].set_yticklabels(labels, fontsize=8)
    for tick, r in zip(axes[0].get_yticklabels(), rows):
        if r.changed:
            tick.set_fontweight("bold")
    fig.suptitle(f"labtax eval: {report.verdict}  (○ base, ● candidate, bar: 95% interval; "
                 "green improved, grey no change, red regressed)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
