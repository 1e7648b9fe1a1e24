"""Fine-tuning a frozen pre-trained model with prompts: its predictive scale, and how many prompts.

A model fitted on a source domain (anything with ``predict(X)``) is frozen; on a target domain the
contaminated MoE keeps it as the expert ``f0`` (its predictions the mean, ``predictive_scale`` its
scale, estimated on held-out source data) and learns K Gaussian prompts and the gate that hands each
covariate region to them (:class:`bayescmoe.ContaminatedMoE`).  :func:`compare_prompts` says how many
prompts the target data support, by three criteria side by side:

* the **held-out log score**: mean log predictive density of the MLE plug-in on K-fold held-out rows;
* **BIC** of the MLE on all rows;
* **PSIS-LOO** (Vehtari, Gelman and Gabry 2017, ArviZ's ``loo``) of the NUTS posterior, with its Pareto-k
  diagnostics (values above ArviZ's threshold mean the importance sampling is unreliable for those rows).

K = 0 is the frozen model alone (no parameter).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from scipy import stats

from bayescmoe.exceptions import BayescmoeError, DataError
from bayescmoe.finetune.estimator import ContaminatedMoE
from bayescmoe.model.data import check_covariates, check_f0_mean, check_response
from bayescmoe.model.families import get_family, residual_scale

__all__ = [
    "predictive_scale", "compare_prompts", "PromptChoice", "PromptRow", "frozen_logpdf", "prompt_overlap", "PromptOverlap",
]  # fmt: skip


def predictive_scale(model: Any, X: Any, y: Any, family: str = "normal", df: float | None = None) -> float:
    """The frozen model's predictive scale on held-out data: the maximum-likelihood scale of ``family``
    for the residuals ``y - model.predict(X)`` around 0 (normal: their mean square, the variance; laplace:
    their mean absolute value; student_t: scipy's fit with ``df`` and location 0).  ``X`` reaches the model
    as given (a DataFrame keeps its column names).

    >>> class Zero:
    ...     def predict(self, X): return np.zeros(len(X))
    >>> predictive_scale(Zero(), np.zeros((4, 1)), [1.0, -1.0, 3.0, -3.0])
    5.0
    """
    residual = np.asarray(y, dtype=float) - np.asarray(model.predict(X), dtype=float)
    if residual.ndim != 1 or not np.all(np.isfinite(residual)):
        raise DataError("the held-out residuals must be one finite value per row")
    if family == "student_t" and df is None:
        raise BayescmoeError("student_t needs df= (degrees of freedom)")
    if family not in ("normal", "laplace", "student_t"):
        raise BayescmoeError(f"unknown family {family!r}; choose one of laplace, normal, student_t")
    return residual_scale(residual, family, df)


def frozen_logpdf(y: np.ndarray, mean: np.ndarray, family: str, scale: Any, df: float | None = None) -> np.ndarray:
    """Each row's log density under the frozen model alone (K = 0)."""
    return get_family(family).logpdf(np.asarray(y, float), np.asarray(mean, float), scale, df)


#: A prompt whose gate mass over the rows is below this many rows is unused (:func:`prompt_overlap`).
UNUSED_MASS = 1.0


@dataclass(frozen=True)
class PromptOverlap:
    """How far one fitted prompt is from the frozen model, on the data (:func:`prompt_overlap`)."""

    prompt: int  # 1-based, in the fit's canonical order
    weight: float  # the prompt's mean gate weight over the rows: how much of the data it takes
    hellinger: float  # the gate-weighted mean Hellinger distance to f0 over the rows
    share_close: float  # the share of the prompt's weight on rows where it is within ``close`` of f0
    close: float
    distinguishable: bool  # used, and hellinger > close: the prompt is not a copy of f0 where it is used
    variance_ratio: float  # nu_k over f0's variance (normal f0), else NaN
    mass: float = float("nan")  # the prompt's gate mass: the sum of its weights over the rows, in rows
    used: bool = True  # its gate mass is at least one row: with less it explains no observation

    @property
    def verdict(self) -> str:
        """``"unused"`` (a gate mass under one row), ``"distinguishable"`` or ``"duplicates f0"``."""
        return "unused" if not self.used else "distinguishable" if self.distinguishable else "duplicates f0"


def prompt_overlap(est: ContaminatedMoE, X: Any, f0_mean: Any = None, f0_scale: Any = None,
                   close: float = 0.1) -> list[PromptOverlap]:  # fmt: skip
    """Is each fitted prompt distinguishable from the frozen model on these data?

    Definition 1 asks whether a prompt can reproduce the frozen expert; with a frozen model given by its
    predictions the question is asked where it matters, at the data: at each row the Hellinger distance
    between the prompt's ``N(h_k(x), nu_k)`` and the frozen model's predictive distribution (quadrature on
    400 points per row), averaged with the prompt's gate weight ``g_k(x)``.  A prompt within ``close``
    (Hellinger distance, between 0 and 1) of the frozen model where its gate opens duplicates it: its
    parameters trade off with the gate's, they are estimated slowly (the non-distinguishable rates) and a
    model with fewer prompts says the same.  A normal frozen model's variance beside ``nu_k`` tells whether
    the prompt differs in spread.  A prompt whose gate mass (the sum of its weights over the rows) is under
    one row is reported as **unused** (``used=False``, ``verdict == "unused"``), never as distinguishable:
    where its gate never opens there is nothing to compare.
    """
    weights, means, scales = est._components(X, f0_mean, f0_scale)
    spec = est.spec_
    if spec.pretrained is None:
        raise BayescmoeError("prompt_overlap needs a frozen model: this is the plain mixture of experts")
    pre = spec.pretrained
    family = get_family(pre.family)
    nodes, wq = np.polynomial.legendre.leggauss(64)
    width0 = np.sqrt(scales[:, 0]) if pre.family == "normal" else scales[:, 0]  # f0's SD, or its scale
    out = []
    for k in range(1, weights.shape[1]):
        # sqrt(f0 f_k) <= sqrt(max f0) sqrt(f_k): the prompt's +-12 SDs hold all of the integral that counts;
        # Gauss-Legendre on pieces between breakpoints at f0's location +- multiples of its width, so that a
        # frozen density much narrower than the prompt is resolved too
        lo, hi = means[:, k] - 12.0 * scales[:, k], means[:, k] + 12.0 * scales[:, k]
        marks = means[:, [0]] + width0[:, None] * np.array([-12.0, -3.0, -1.0, 0.0, 1.0, 3.0, 12.0])
        edges = np.sort(np.column_stack([lo, np.clip(marks, lo[:, None], hi[:, None]), hi]), axis=1)
        a, b = edges[:, :-1, None], edges[:, 1:, None]
        grid = ((a + b) / 2 + (b - a) / 2 * nodes).reshape(len(lo), -1)
        dx = ((b - a) / 2 * wq).reshape(len(lo), -1)
        log0 = family.logpdf(grid, means[:, [0]], scales[:, [0]], pre.df)
        logk = stats.norm.logpdf(grid, means[:, [k]], scales[:, [k]])
        affinity = np.sum(np.exp(0.5 * (log0 + logk)) * dx, axis=1)
        distance = np.sqrt(np.clip(1.0 - affinity, 0.0, 1.0))
        g = weights[:, k]
        mean_h = float(np.sum(g * distance) / max(np.sum(g), 1e-300))
        share = float(np.sum(g * (distance <= close)) / max(np.sum(g), 1e-300))
        ratio = float(np.mean(scales[:, k] ** 2 / scales[:, 0])) if pre.family == "normal" else float("nan")
        used = bool(g.sum() >= UNUSED_MASS)
        out.append(PromptOverlap(k, float(g.mean()), mean_h, share, close, used and mean_h > close, ratio,
                                 float(g.sum()), used))  # fmt: skip
    return out


@dataclass(frozen=True)
class PromptRow:
    """One number of prompts K and its three criteria."""

    prompts: int
    n_params: int
    loglik: float
    bic: float
    heldout: float  # mean log predictive density per held-out row
    heldout_se: float
    converged: bool
    loo: float | None = None  # elpd_loo (sum over rows)
    loo_se: float | None = None
    p_loo: float | None = None
    pareto_k_max: float | None = None
    pareto_k_bad: int | None = None  # rows above ArviZ's threshold
    pareto_k_threshold: float | None = None
    warnings: tuple[str, ...] = ()  # every warning of this K's fits and posterior ("fold 2: DegenerateWarning: ...")


@dataclass(frozen=True)
class PromptChoice:
    """The result of :func:`compare_prompts`: one row per K and the K each criterion chooses."""

    rows: list[PromptRow]
    n: int
    folds: int
    choice: dict[str, int] = field(default_factory=dict)
    #: the estimator fitted on all rows for each K >= 1 (with its posterior when one was sampled): ask it more,
    #: e.g. ``choice.models[3].select_prompts(X, y)`` or ``.posterior_prompts()``
    models: dict[int, ContaminatedMoE] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "folds": self.folds, "choice": self.choice, "rows": [asdict(r) for r in self.rows]}

    def table(self) -> str:
        head = (f"{'K':>2} {'params':>6} {'loglik':>11} {'BIC':>11} {'held-out':>9} {'(se)':>7} {'elpd_loo':>10} "
                f"{'(se)':>7} {'p_loo':>6} {'max k':>6} {'bad k':>5} {'warn':>4}")  # fmt: skip
        lines = [head]
        for r in self.rows:
            loo = (f"{r.loo:10.2f} {r.loo_se:7.2f} {r.p_loo:6.1f} {r.pareto_k_max:6.2f} {r.pareto_k_bad:5d}"
                   if r.loo is not None else f"{'-':>10} {'-':>7} {'-':>6} {'-':>6} {'-':>5}")  # fmt: skip
            lines.append(f"{r.prompts:>2} {r.n_params:>6} {r.loglik:11.2f} {r.bic:11.2f} {r.heldout:9.4f} "
                         f"{r.heldout_se:7.4f} {loo} {len(r.warnings):>4}")  # fmt: skip
        lines.append("chosen K: " + ", ".join(f"{k} {v}" for k, v in self.choice.items()))
        for r in self.rows:
            if r.warnings:
                lines.append(f"K = {r.prompts}: {len(r.warnings)} warning{'s' if len(r.warnings) > 1 else ''}")
                lines += [f"  {w[:300]}{' ...' if len(w) > 300 else ''}" for w in r.warnings]
        return "\n".join(lines)


def _folds(n: int, folds: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(order, folds)]


def compare_prompts(
    X: Any,
    y: Any,
    *,
    pretrained: Any = None,
    f0_mean: Any = None,
    family: str = "normal",
    scale: float | None = None,
    df: float | None = None,
    prompts: Sequence[int] = (0, 1, 2, 3),
    expert: str = "linear",
    folds: int = 5,
    posterior: bool = True,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    sampler: str = "pymc",
    seed: int = 0,
    n_starts: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> PromptChoice:
    """How many prompts a frozen model needs on target data: held-out log score, BIC and PSIS-LOO.

    Parameters
    ----------
    X, y : array_like
        The target data.
    pretrained : object with ``predict(X)``, optional
        The frozen model; or give its predictions as ``f0_mean`` (one per row).
    family, scale, df :
        The frozen model's predictive distribution (:func:`predictive_scale` estimates ``scale``).
    prompts : sequence of int
        The numbers of prompts to compare; 0 is the frozen model alone.
    expert :
        The prompts' mean function (each with an intercept).
    folds : int
        K-fold cross-validation of the held-out log score (rows shuffled with ``seed``).
    posterior : bool
        Also sample each model's posterior (NUTS from its MLE; ``draws``, ``tune``, ``chains``, ``sampler``)
        for PSIS-LOO.

    Returns
    -------
    PromptChoice
        ``rows`` (one :class:`PromptRow` per K), ``choice`` (the K of the best held-out score, of the
        smallest BIC and of the largest elpd_loo), ``table()`` and ``to_dict()``.
    """
    if pretrained is None and f0_mean is None:
        raise BayescmoeError("give the frozen model (pretrained=) or its predictions (f0_mean=)")
    if scale is None:
        raise BayescmoeError("give the frozen model's predictive scale= (bayescmoe.finetune.adapt.predictive_scale)")
    if get_family(family).needs_df and df is None:
        raise BayescmoeError(f"family {family!r} needs its degrees of freedom: give df=")
    prompts = _prompt_counts(prompts)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise BayescmoeError(f"folds must be an integer of at least 2 (K-fold cross-validation), got {folds!r}")
    # every check on all rows, before any fold: a problem is named at its row of the data
    Xa = check_covariates(X)
    y = check_response(y, len(Xa))
    mean = check_f0_mean(pretrained.predict(X) if f0_mean is None else f0_mean, len(y))
    if folds > len(y):
        raise BayescmoeError(f"folds = {folds} exceeds the {len(y)} rows")
    X = Xa
    parts = _folds(len(y), folds, seed)
    rows, models, steps = [], {}, len(prompts) * (folds + 1 + posterior)
    done = 0

    def report(what):
        nonlocal done
        done += 1
        if progress:
            progress(what, done, steps)

    for K in prompts:
        if K == 0:
            pointwise = frozen_logpdf(y, mean, family, scale, df)
            loglik = float(pointwise.sum())
            row = PromptRow(0, 0, loglik, -2.0 * loglik, float(pointwise.mean()),
                            float(pointwise.std(ddof=1) / np.sqrt(len(y))), True)  # fmt: skip
            if posterior:
                row = PromptRow(**asdict(row) | {"loo": loglik, "loo_se": float(pointwise.std(ddof=1) * np.sqrt(len(y))),
                                                  "p_loo": 0.0, "pareto_k_max": float("-inf"), "pareto_k_bad": 0})  # fmt: skip
            rows.append(row)
            for _ in range(folds + 1 + posterior):
                report("K = 0")
            continue

        def model(K=K, frozen=None):
            return ContaminatedMoE(
                pretrained=_Predictions() if frozen is None else frozen,
                family=family,
                scale=scale,
                df=df,
                prompts=K,
                expert=expert,
                random_state=seed,
                n_starts=n_starts,
            )

        heldout = np.empty(len(y))
        caught: list[str] = []  # every fit's warnings, carried into the row (the fits' own emission is held back)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for f, part in enumerate(parts):
                train = np.setdiff1d(np.arange(len(y)), part)
                est = model().fit(X[train], y[train], f0_mean=mean[train])
                heldout[part] = est.score_samples(X[part], y[part], f0_mean=mean[part])
                caught += [f"fold {f + 1}: {w}" for w in est.fit_.warnings]
                report(f"K = {K} fold")
            # the model kept for the caller predicts with the frozen model itself (its predictions computed once)
            full = model(frozen=pretrained).fit(X, y, f0_mean=mean)
            caught += [f"all rows: {w}" for w in full.fit_.warnings]
            report(f"K = {K} all rows")
        fit, models[K] = full.fit_, full
        row = {"prompts": K, "n_params": fit.n_params, "loglik": fit.loglik, "bic": fit.bic,
               "heldout": float(heldout.mean()), "heldout_se": float(heldout.std(ddof=1) / np.sqrt(len(y))),
               "converged": fit.converged}  # fmt: skip
        if posterior:
            loo, sampled = _loo(full, X, y, mean, draws, tune, chains, sampler, seed)
            row |= loo
            caught += [f"posterior: {w}" for w in sampled]
            report(f"K = {K} posterior")
        rows.append(PromptRow(**row, warnings=tuple(caught)))
    choice = {
        "held-out log score": max(rows, key=lambda r: r.heldout).prompts,
        "BIC": min(rows, key=lambda r: r.bic).prompts,
    }
    if posterior:
        choice["PSIS-LOO"] = max(rows, key=lambda r: r.loo).prompts
    return PromptChoice(rows, len(y), folds, choice, models)


def _prompt_counts(prompts: Any) -> list[int]:
    """The numbers of prompts to compare: a non-empty sequence of whole numbers >= 0, without repeats."""
    ok = isinstance(prompts, (list, tuple, np.ndarray, range)) and len(prompts) > 0
    ok = ok and all(
        isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)) and k >= 0 for k in prompts
    )
    if not ok:
        raise BayescmoeError(f"prompts must be a non-empty list of numbers of prompts (0, 1, 2, ...), got {prompts!r}")
    return sorted({int(k) for k in prompts})


class _Predictions:
    """A frozen model whose predictions are given with the data (``f0_mean=`` at each call)."""

    def predict(self, X):  # pragma: no cover - the estimator is always given f0_mean here
        raise BayescmoeError("the frozen model's predictions must be given as f0_mean=")


def _loo(est: ContaminatedMoE, X, y, mean, draws, tune, chains, sampler, seed) -> tuple[dict[str, Any], list[str]]:
    """PSIS-LOO of the posterior (the pointwise log-likelihood of every draw, ArviZ's loo), and the sampling's warnings."""
    import arviz as az

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # kept with the row's warnings, beside the Pareto k
        idata = est.sample_posterior(X, y, f0_mean=mean, draws=draws, tune=tune, chains=chains, sampler=sampler,
                                     seed=seed, check=False)  # fmt: skip
    post = idata.posterior
    shape = (post.sizes["chain"], post.sizes["draw"], len(y))
    values = est.posterior_loglik(X, y, f0_mean=mean).reshape(shape)  # every draw, chain by chain
    tree = xr.DataTree.from_dict(
        {"/posterior": post.to_dataset(), "/log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), values)})}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns about high Pareto k: the table reports them (max k, bad k)
        result = az.loo(tree, pointwise=True)
    k = np.asarray(result.pareto_k)
    threshold = float(result.good_k) if np.ndim(result.good_k) == 0 else 0.7
    texts = [f"{w.category.__name__}: {w.message}" for w in seen if "BLAS" not in str(w.message)]
    return {"loo": float(result.elpd), "loo_se": float(result.se), "p_loo": float(result.p),
            "pareto_k_max": float(k.max()), "pareto_k_bad": int((k > threshold).sum()),
            "pareto_k_threshold": threshold}, texts  # fmt: skip
