"""Log-log plots of a rate study, as the papers draw them: loss against n, the fitted line, theory.

Each panel shows the mean loss over replications at each n with bars of +-2 standard
deviations (the lower bar is drawn down to mean / 100 at most: a log axis has no room for
negative values), the least-squares line whose slope is the empirical rate, and a line of
the theoretical slope through the fitted line's middle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bayescmoe.model.proposition import proposition_1
from bayescmoe.studies.rates import RateRow, RateStudy
from bayescmoe.studies.widening import PAPER_DELTA_SLOPES

__all__ = ["plot_study", "plot_widening", "plot_gate", "gate_points"]

LABELS = {
    "beta": r"$\|\hat\beta - \beta^*\|$",
    "tau": r"$|\hat\tau - \tau^*|$",
    "exp_tau": r"$|e^{\hat\tau} - e^{\tau^*}|$",
    "eta": r"$\|\hat\eta - \eta^*\|$",
    "b": r"$|\hat b - b^*|$",
    "nu": r"$|\hat\nu - \nu^*|$",
    "lam": r"$|\hat\lambda - \lambda^*|$",
    "density": "Hellinger distance",
}


def plot_study(study: RateStudy, table: list[RateRow], directory: str | Path) -> list[Path]:
    """Draw one figure per study (a panel per loss); write it as PNG and SVG; return the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in table if r.empirical is not None]
    cols = min(4, len(rows))
    fig, axes = plt.subplots(
        (len(rows) + cols - 1) // cols,
        cols,
        figsize=(3.6 * cols, 3.0 * ((len(rows) + cols - 1) // cols)),
        squeeze=False,
    )
    for ax, row in zip(axes.flat, rows):
        _panel(ax, study, row)
    for ax in list(axes.flat)[len(rows) :]:
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
    ax.errorbar(
        ns,
        mean,
        yerr=[lower, 2 * sd],
        fmt="o",
        ms=3,
        color="tab:blue",
        ecolor="tab:blue",
        alpha=0.6,
        elinewidth=0.8,
        capsize=0,
        label="mean ± 2 sd",
    )
    mid = np.exp(np.mean(np.log(ns)))
    level = np.exp(np.mean(np.log(mean)))
    grid = np.array([ns.min(), ns.max()])
    ax.plot(
        grid,
        level * (grid / mid) ** -row.empirical,
        color="tab:blue",
        label=f"fit: n^-{row.empirical:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}]",
    )
    if row.theory is not None:
        ax.plot(grid, level * (grid / mid) ** -row.theory, "--", color="tab:red", label=f"theory: n^-{row.theory_text}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n")
    ax.set_title(LABELS.get(row.parameter, row.parameter), fontsize=10)
    ax.legend(fontsize=7, loc="lower left")


# -- widening studies ----------------------------------------------------------------------------

WIDENING_LABELS = {
    "beta": r"$\beta$ (rms)",
    "tau": r"$\tau$",
    "exp_tau": r"$e^{\tau}$",
    "eta": r"$\eta$ (rms)",
    "b": "$b$",
    "nu": r"$\nu$",
}
FAMILY_COLORS = {"normal": "tab:red", "laplace": "tab:blue", "student_t": "tab:green"}


def plot_widening(study, directory: str | Path, n: int | None = None) -> list[Path]:
    """The figures of a widening study (:mod:`bayescmoe.studies.widening`); returns their paths.

    * ``widening_sd.png``: posterior SD against Delta at sample size ``n`` (default the largest),
      log-log, per parameter and family: the geometric mean over replications with its range, the local
      Fisher SD (dashed), the MLE's mean standard error (crosses) and the paper's slope (dotted,
      through the posterior SD at the largest Delta);
    * ``widening_densities.png``: posterior densities at the largest and the smallest Delta side
      by side (arviz_plots), for the spec's own family;
    * ``widening_pair.png``: draws of (tau, beta_1) at every Delta, largest first.

    The last two need the posteriors saved by a study run with a ``directory``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n = study.ns[-1] if n is None else n
    table = [e for e in study.table() if e["n"] == n]
    params = study.parameters
    fig, axes = plt.subplots(1, len(params), figsize=(3.2 * len(params), 3.2), squeeze=False)
    for ax, p in zip(axes[0], params):
        for family in study.families:
            rows = sorted((e for e in table if e["family"] == family), key=lambda e: e["delta"])
            if not rows:
                continue
            color = FAMILY_COLORS.get(family, "k")
            d = np.array([e["delta"] for e in rows])
            cells = study._cells(family)
            sds = [np.array([r["post_sd"][p] for r in cells[(e["delta"], n)]]) for e in rows]
            mean = np.array([np.exp(np.log(s).mean()) for s in sds])
            spread = [np.clip(mean - [s.min() for s in sds], 0, None), np.clip([s.max() for s in sds] - mean, 0, None)]
            ax.errorbar(
                d, mean, yerr=spread, fmt="o-", color=color, ms=4, lw=1, capsize=2, label=f"{family}: posterior SD"
            )
            fisher = np.array([np.nan if e["fisher_sd"][p] is None else e["fisher_sd"][p] for e in rows])
            ax.plot(d, fisher, "--", color=color, lw=1, label=f"{family}: Fisher SD")
            mle = np.array([np.nan if e["mle_se"][p] is None else e["mle_se"][p] for e in rows])
            ax.plot(d, mle, "x", color=color, ms=6, label=f"{family}: MLE SE")
            if proposition_1(study.families[family]) is False:
                slope = PAPER_DELTA_SLOPES[p]
                ax.plot(d, mean[-1] * (d / d[-1]) ** slope, ":", color="k", lw=1.2, label=f"paper: Delta^{slope:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(study.deltas, [f"{v:g}" for v in study.deltas])
        ax.minorticks_off()
        ax.set_xlabel("Delta")
        ax.set_title(WIDENING_LABELS.get(p, p), fontsize=10)
    axes[0][0].set_ylabel(f"SD at n = {n}")
    axes[0][-1].legend(fontsize=6, loc="best")
    fig.suptitle(
        f"{study.spec.name}: posterior SD as the prompt merges into f0 ({study.reps} replications)", fontsize=10
    )
    fig.tight_layout()
    paths = [directory / "widening_sd.png"]
    fig.savefig(paths[0], dpi=120)
    plt.close(fig)
    saved = _saved_posteriors(study, n)
    if saved is not None:
        ends = {d: saved[d] for d in (study.deltas[-1], study.deltas[0])}
        paths += _plot_densities(ends, directory) + _plot_pair(saved, directory)
    return paths


def _saved_posteriors(study, n):
    """The saved posteriors of the spec's own family at every Delta, largest first, or None."""
    import xarray as xr

    if study.directory is None:
        return None
    family = study.spec.pretrained.family
    out = {}
    for delta in sorted(study.deltas, reverse=True):
        path = Path(study.directory) / "posterior" / f"{family}_delta{delta:g}_n{n}.nc"
        if not path.exists():
            return None
        out[delta] = xr.open_datatree(path, engine="h5netcdf").posterior.to_dataset()
    return out


def _plot_densities(pair, directory: Path) -> list[Path]:
    import arviz_plots as azp
    import xarray as xr

    deltas = list(pair)
    post = xr.concat([pair[d].drop_attrs() for d in deltas], dim=xr.Variable("Delta", deltas))
    shown = xr.Dataset(
        {
            "tau": post["tau"],
            "nu": post["nu"],
            "beta_1": post["beta"].isel(covariate=0, drop=True),
            "eta_1": post["eta"].isel(covariate=0, drop=True),
        }
    )
    pc = azp.plot_dist(
        xr.DataTree.from_dict({"/posterior": shown}),
        cols=["__variable__", "Delta"],
        col_wrap=2,
        backend="matplotlib",
        figure_kwargs={"figsize": (7.5, 10)},
    )
    path = directory / "widening_densities.png"
    pc.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close("all")
    return [path]


def _plot_pair(pair, directory: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(pair), figsize=(3.4 * len(pair), 3.4), sharex=True, sharey=True, squeeze=False)
    for ax, (delta, post) in zip(axes[0], pair.items()):
        tau = post["tau"].values.ravel()
        beta1 = post["beta"].isel(covariate=0).values.ravel()
        r = np.corrcoef(tau, beta1)[0, 1]
        ax.scatter(tau, beta1, s=4, alpha=0.35)
        ax.set_title(f"Delta = {delta:g}: corr {r:+.2f}", fontsize=10)
        ax.set_xlabel("tau")
    axes[0][0].set_ylabel("beta_1")
    fig.tight_layout()
    path = directory / "widening_pair.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]


def plot_gate(estimator, X, columns: tuple[int, int] = (0, 1), names: list[str] | None = None, f0_mean=None, path=None):
    """Where the gate opens: the rows of ``X`` over two of its covariates, coloured by each prompt's gate
    weight ``g_k(x)`` (a panel per prompt; with a frozen model, a first panel of its weight).

    Rows that share the two plotted covariates (ties, a discrete covariate) are drawn as one point coloured
    by their mean weight, its area growing with their number, so that the colour at a point is not that of
    whichever row happened to be drawn last.  ``estimator`` is a fitted :class:`bayescmoe.ContaminatedMoE`;
    ``names`` label the covariates.  Returns the matplotlib figure (also written to ``path`` when given).
    """
    import matplotlib.pyplot as plt  # the backend is the caller's: a notebook keeps its open figures

    weights, _, _ = estimator._components(X, f0_mean, need_scale=False)
    X = np.asarray(X.to_numpy(dtype=float) if hasattr(X, "to_numpy") else X, dtype=float)
    frozen = estimator.spec_.pretrained is not None
    labels = (["frozen model"] if frozen else []) + [
        f"prompt {k + 1}" for k in range(weights.shape[1] - (1 if frozen else 0))
    ]
    names = names or [f"x{j + 1}" for j in range(X.shape[1])]
    i, j = columns
    points, rows_at, count = gate_points(X[:, [i, j]], weights)
    size = 6.0 * np.sqrt(count)  # area ~ sqrt(count): a tie of 100 rows is 10 times a single row
    fig, axes = plt.subplots(1, len(labels), figsize=(3.6 * len(labels), 3.4), sharex=True, sharey=True,
                             squeeze=False, constrained_layout=True)  # fmt: skip
    for ax, label, w, total in zip(axes[0], labels, rows_at.T, weights.mean(axis=0)):
        drawn = ax.scatter(points[:, 0], points[:, 1], c=w, s=size, cmap="viridis", vmin=0.0, vmax=1.0,
                           rasterized=True)  # fmt: skip
        ax.set_title(f"{label}: mean weight {total:.2f}", fontsize=9)
        ax.set_xlabel(names[i])
    axes[0, 0].set_ylabel(names[j])
    fig.colorbar(drawn, ax=axes[0].tolist(), label="gate weight (mean over tied rows)", shrink=0.9)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def gate_points(coords: np.ndarray, weights: np.ndarray):
    """The distinct rows of ``coords`` (m, 2), the mean of ``weights`` (n, C) over the rows at each, and how
    many rows each holds.

    >>> pts, mean, count = gate_points(np.array([[0, 0], [1, 1], [0, 0.0]]), np.array([[0.2], [0.5], [0.6]]))
    >>> pts.tolist(), mean.round(3).tolist(), count.tolist()
    ([[0.0, 0.0], [1.0, 1.0]], [[0.4], [0.5]], [2, 1])
    """
    points, inverse, count = np.unique(coords, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    sums = np.stack([np.bincount(inverse, weights=w, minlength=len(points)) for w in weights.T], axis=1)
    return points, sums / count[:, None], count
