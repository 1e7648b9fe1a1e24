"""Log-log plots of a rate study, as the papers draw them: loss against n, the fitted line, theory.

Each panel shows the mean loss over replications at each n with bars of +-2 standard
deviations (the lower bar is drawn down to mean / 100 at most: a log axis has no room for
negative values), the least-squares line whose slope is the empirical rate, and a line of
the theoretical slope through the fitted line's middle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bayescmoe.studies.rates import RateRow, RateStudy

__all__ = ["plot_study"]

LABELS = {"beta": r"$\|\hat\beta - \beta^*\|$", "tau": r"$|\hat\tau - \tau^*|$",
          "exp_tau": r"$|e^{\hat\tau} - e^{\tau^*}|$", "eta": r"$\|\hat\eta - \eta^*\|$",
          "b": r"$|\hat b - b^*|$", "nu": r"$|\hat\nu - \nu^*|$", "lam": r"$|\hat\lambda - \lambda^*|$",
          "density": "Hellinger distance"}


def plot_study(study: RateStudy, table: list[RateRow], directory: str | Path) -> list[Path]:
    """Draw one figure per study (a panel per loss); write it as PNG and SVG; return the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in table if r.empirical is not None]
    cols = min(4, len(rows))
    fig, axes = plt.subplots((len(rows) + cols - 1) // cols, cols, figsize=(3.6 * cols, 3.0 * ((len(rows) + cols - 1) // cols)),
                             squeeze=False)
    for ax, row in zip(axes.flat, rows):
        _panel(ax, study, row)
    for ax in list(axes.flat)[len(rows):]:
        ax.set_visible(False)
    fig.suptitle(f"{study.spec.name}: {study.reps} replications per n, start {study.start.label}", fontsize=10)
    fig.tight_layout()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{study.spec.name}_rates.{ext}" for ext in ("png", "svg")]
    for path in paths:
        fig.savefig(path, dpi=130)
    plt.close(fig)
    return paths


def _panel(ax, study: RateStudy, row: RateRow) -> None:
    groups: dict[int, list[float]] = {}
    for r in study.rows:
        if r["converged"] and r["n"] >= row.n0 and row.parameter in r["losses"]:
            groups.setdefault(r["n"], []).append(r["losses"][row.parameter])
    ns = np.array(sorted(groups), dtype=float)
    mean = np.array([np.mean(groups[n]) for n in sorted(groups)])
    sd = np.array([np.std(groups[n], ddof=1) if len(groups[n]) > 1 else 0.0 for n in sorted(groups)])
    lower = np.minimum(2 * sd, mean * 0.99)
    ax.errorbar(ns, mean, yerr=[lower, 2 * sd], fmt="o", ms=3, color="tab:blue", ecolor="tab:blue", alpha=0.6,
                elinewidth=0.8, capsize=0, label="mean ± 2 sd")
    mid = np.exp(np.mean(np.log(ns)))
    level = np.exp(np.mean(np.log(mean)))
    grid = np.array([ns.min(), ns.max()])
    ax.plot(grid, level * (grid / mid) ** -row.empirical, color="tab:blue",
            label=f"fit: n^-{row.empirical:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}]")
    if row.theory is not None:
        ax.plot(grid, level * (grid / mid) ** -row.theory, "--", color="tab:red", label=f"theory: n^-{row.theory_text}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n")
    ax.set_title(LABELS.get(row.parameter, row.parameter), fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
