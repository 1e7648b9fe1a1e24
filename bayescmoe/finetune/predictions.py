"""The predictions, scores and posterior of a fitted :class:`~bayescmoe.ContaminatedMoE`: the mixin
:class:`_Predictions`, whose methods read the estimator's fitted state (``params_``, ``units_``, ``spec_``,
the frozen model) through the estimator's own helpers (``_fitted``, ``_covariates``, ``_frozen``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from bayescmoe.exceptions import FitError
from bayescmoe.model.data import check_response
from bayescmoe.model.experts import get_expert
from bayescmoe.model.families import get_family
from bayescmoe.model.likelihood import Likelihood
from bayescmoe.model.simulate import gate_probability, mixture_weights, prompt_means
from bayescmoe.model.spec import Spec
from bayescmoe.theory.dendrogram import select_prompts

__all__: list[str] = []


def _posterior_in(idata: Any, spec: Spec, units: Any) -> Any:
    """A posterior sampled in standardised units with its draws in the data's (:meth:`Units.params` keeps the
    leading chain and draw axes); the other groups as they are."""
    import xarray as xr

    post = idata.posterior.to_dataset()
    mapped = units.params(spec, {name: post[name].values for name in spec.param_names})
    user = post.assign({name: post[name].copy(data=np.asarray(mapped[name])) for name in spec.param_names})
    user.attrs = dict(post.attrs) | {"units": "the data's (sampled in standardised units)"}
    tree = idata.copy()
    tree["posterior"] = xr.DataTree(dataset=user)
    return tree


class _Predictions:
    """What a fitted ContaminatedMoE computes: the gate, means, quantiles, intervals and draws of the predictive
    distribution, scores, and the posterior by NUTS (a mixin of :class:`~bayescmoe.ContaminatedMoE`)."""

    # -- prediction ---------------------------------------------------------------------------------------
    def predict_gate(self, X: Any) -> np.ndarray:
        """The prompts' weights for each row of ``X``: ``g(x)`` (n,) for one prompt written with ``[prompt]``,
        else (n, K)."""
        self._fitted()
        Z = self._covariates(X)  # the gate needs no frozen expert: a spec with mean = "data" asks for none here
        if self.units_ is not None:
            Z = self.units_.covariates(Z)
        return gate_probability(self._model.spec, Z, self._model_params)

    def _inputs(self, X: Any, f0_mean: Any = None, f0_scale: Any = None, need_scale: bool = True):
        """The gate's and prompts' covariates and the frozen expert's mean and scale at each row, in the units of
        the fit (standardised for a built model): what every prediction needs whatever the parameters (the
        frozen model is asked once)."""
        self._fitted()
        Z = self._covariates(X)
        mean0, scale0 = self._frozen(X, Z, f0_mean, f0_scale, need_scale)
        units, pre = self.units_, self.spec_.pretrained
        if units is None:
            return Z, mean0, scale0
        if pre is not None and scale0 is None:
            scale0 = np.full(len(Z), pre.scale)
        family = pre.family if pre is not None else "normal"
        return units.covariates(Z), units.frozen_mean(mean0), units.frozen_scale(family, scale0)

    def _user(self, weights: np.ndarray, means: np.ndarray, sds: np.ndarray):
        """A mixture computed in the fit's units, in the data's: means by ``y_center + y_scale m``, the prompts'
        SDs and f0's scale by ``y_scale`` (a normal f0's variance by its square)."""
        units = self.units_
        if units is None:
            return weights, means, sds
        pre = self.spec_.pretrained
        factor = np.full(sds.shape[1], units.y_scale)
        if pre is not None and pre.family == "normal":
            factor[0] = units.y_scale**2
        return weights, units.y_center + units.y_scale * means, sds * factor

    def _mixture(self, Xs: np.ndarray, mean0, scale0, params: dict[str, Any]):
        """Per row at ``params`` (in the fit's units): the weights (n, C), the components' means (n, C) and scales
        (n, C) (SDs for the prompts, the family's own scale for f0, a normal's variance), frozen expert first
        when there is one."""
        spec = self._model.spec
        weights = mixture_weights(spec, Xs, params)
        means = prompt_means(spec, Xs, params)
        sds = np.tile(np.sqrt(np.atleast_1d(np.asarray(params["nu"], float))), (len(Xs), 1))
        pre = spec.pretrained
        if pre is not None:
            if mean0 is None:
                mean0 = get_expert(pre.expert)(Xs @ np.array(pre.eta) + pre.intercept)
            s0 = scale0 if scale0 is not None else np.full(len(Xs), pre.scale)
            means, sds = np.column_stack([mean0, means]), np.column_stack([s0, sds])
        return weights, means, sds

    def _components(self, X: Any, f0_mean: Any = None, f0_scale: Any = None, need_scale: bool = True):
        """:meth:`_mixture` at the fitted estimates, in the data's units."""
        return self._user(*self._mixture(*self._inputs(X, f0_mean, f0_scale, need_scale), self._model_params))

    def _mean(self, weights: np.ndarray, means: np.ndarray) -> np.ndarray:
        pre = self.spec_.pretrained
        if pre is not None and pre.family == "student_t" and pre.df <= 1.0:
            means = means.copy()
            means[:, 0] = np.nan
        return (weights * means).sum(axis=1)

    def predict(self, X: Any, f0_mean: Any = None) -> np.ndarray:
        """The mixture mean ``w_0(x) m0(x) + sum_k w_k(x) h_k(x)`` for each row of ``X``.

        Every pre-trained family is symmetric about its location, so ``m0(x)`` is its mean (a Student-t
        with ``df <= 1`` has none: NaN is returned then).  ``f0_mean``: the frozen expert's mean at these
        rows, for a spec that takes it from the data.
        """
        weights, means, _ = self._components(X, f0_mean, need_scale=False)
        return self._mean(weights, means)

    def _cdf(self, q: np.ndarray, weights, means, sds) -> np.ndarray:
        out = np.zeros_like(q)
        spec = self.spec_
        start = 0
        if spec.pretrained is not None:
            pre = spec.pretrained
            scale = sds[:, 0]
            z = (q - means[:, 0]) / (np.sqrt(scale) if pre.family == "normal" else scale)
            if pre.family == "normal":
                cdf0 = special.ndtr(z)
            elif pre.family == "laplace":
                cdf0 = np.where(z < 0, 0.5 * np.exp(np.minimum(z, 0)), 1 - 0.5 * np.exp(-np.maximum(z, 0)))
            else:
                cdf0 = special.stdtr(pre.df, z)
            out += weights[:, 0] * cdf0
            start = 1
        for k in range(start, weights.shape[1]):
            out += weights[:, k] * special.ndtr((q - means[:, k]) / sds[:, k])
        return out

    def predict_cdf(self, X: Any, y: Any, f0_mean: Any = None, f0_scale: Any = None) -> np.ndarray:
        """The plug-in predictive CDF ``P(Y <= y_i | x_i)`` at each row (n,)."""
        weights, means, sds = self._components(X, f0_mean, f0_scale)
        y = np.asarray(y, dtype=float).reshape(-1)
        if y.shape != (len(weights),):
            raise ValueError(f"y must have one value per row of X ({len(weights)}), got shape {np.shape(y)}")
        return self._cdf(y, weights, means, sds)

    def predict_quantile(self, X: Any, q: Any = 0.5, f0_mean: Any = None, f0_scale: Any = None) -> np.ndarray:
        """The plug-in predictive quantiles of y at each row: (n,) for one level ``q``, (n, len(q)) for several
        (``q = 0.5``, the default, is the predictive median).  Bisection on the mixture's CDF, its bracket widened
        until it holds the quantile (heavy tails: a Student-t frozen model)."""
        levels = np.asarray(q, dtype=float)
        if levels.ndim > 1 or levels.size == 0 or not np.all((levels > 0) & (levels < 1)):
            raise ValueError(f"q must be a level or levels strictly between 0 and 1, got {q!r}")
        weights, means, sds = self._components(X, f0_mean, f0_scale)
        out = np.column_stack([self._quantile(p, weights, means, sds) for p in np.atleast_1d(levels)])
        return out[:, 0] if levels.ndim == 0 else out

    def _quantile(self, p: float, weights, means, sds) -> np.ndarray:
        width = 10.0 * np.max(np.where(np.isfinite(sds), sds, 1.0), axis=1) + 1.0
        lo, hi = means.min(axis=1) - width, means.max(axis=1) + width
        for _ in range(200):  # widen the bracket until it holds the quantile (heavy tails: a Student-t f0)
            low = self._cdf(lo, weights, means, sds) > p
            high = self._cdf(hi, weights, means, sds) < p
            if not (low.any() or high.any()):
                break
            lo = np.where(low, lo - 2.0 * (hi - lo), lo)
            hi = np.where(high, hi + 2.0 * (hi - lo), hi)
        for _ in range(200):
            if np.all(hi - lo <= 1e-12 * np.maximum(1.0, np.abs(hi) + np.abs(lo))):
                break
            mid = 0.5 * (lo + hi)
            below = self._cdf(mid, weights, means, sds) < p
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def predict_interval(self, X: Any, alpha: float = 0.1, f0_mean: Any = None, f0_scale: Any = None):
        """The plug-in predictive ``1 - alpha`` interval of y at each row: the mixture's ``alpha/2`` and
        ``1 - alpha/2`` quantiles (:meth:`predict_quantile`).  Returns ``(lower, upper)``."""
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
        self._fitted()
        bounds = self.predict_quantile(X, [alpha / 2, 1 - alpha / 2], f0_mean, f0_scale)
        return bounds[:, 0], bounds[:, 1]

    def sample_predictive(self, X: Any, n_draws: int = 1000, f0_mean: Any = None, f0_scale: Any = None):
        """Draws of y at each row from the fitted (plug-in) mixture: an array (n_draws, n)."""
        weights, means, sds = self._components(X, f0_mean, f0_scale)
        return self._draw(np.random.default_rng(self.random_state), weights, means, sds, n_draws)

    def _draw(self, rng: np.random.Generator, weights, means, sds, n_draws: int) -> np.ndarray:
        """``n_draws`` draws of y at each row from the mixture of ``weights``, ``means`` and ``sds``."""
        n = len(weights)
        chosen = (rng.random((n_draws, n, 1)) > np.cumsum(weights, axis=1)[None]).sum(axis=2)
        chosen = np.minimum(chosen, weights.shape[1] - 1)
        draws = rng.standard_normal((n_draws, n))
        if self.spec_.pretrained is not None:
            pre = self.spec_.pretrained
            base = get_family(pre.family).sample(rng, np.zeros((n_draws, n)), 1.0, pre.df)
            scale0 = np.sqrt(sds[:, 0]) if pre.family == "normal" else sds[:, 0]
            draws = np.where(
                chosen == 0, base * scale0, draws * np.take_along_axis(sds[None], chosen[..., None], 2)[..., 0]
            )
        else:
            draws = draws * np.take_along_axis(sds[None], chosen[..., None], 2)[..., 0]
        return (
            np.take_along_axis(np.broadcast_to(means, (n_draws,) + means.shape), chosen[..., None], 2)[..., 0] + draws
        )

    def select_prompts(self, X: Any, y: Any, f0_mean: Any = None, f0_scale: Any = None, omega: float | None = None):
        """The dendrogram of this fit's prompts on its data and the number of prompts it chooses
        (:func:`bayescmoe.select_prompts`): fit once with many prompts, read the number off the merges."""
        self._fitted()
        Z = self._covariates(X)
        mean0, scale0 = self._frozen(X, Z, f0_mean, f0_scale)
        return select_prompts(self.fit_, Z, y, f0_mean=mean0, f0_scale=scale0, omega=omega)

    def score(self, X: Any, y: Any, f0_mean: Any = None, f0_scale: Any = None) -> float:
        """Mean log-likelihood per observation (higher is better)."""
        return float(np.mean(self.score_samples(X, y, f0_mean, f0_scale)))

    def score_samples(self, X: Any, y: Any, f0_mean: Any = None, f0_scale: Any = None) -> np.ndarray:
        """Each row's log-likelihood under the fitted model (in the data's units)."""
        rows = self._likelihood(X, y, f0_mean, f0_scale).loglik_rows(self._model.spec.layout.pack(self._model_params))
        return rows if self.units_ is None else self.units_.loglik(rows)

    def _observed(self, X: Any, y: Any, f0_mean: Any, f0_scale: Any):
        """The covariates, the response and the frozen expert at each row, in the units of the fit."""
        Xs, mean0, scale0 = self._inputs(X, f0_mean, f0_scale)
        y = check_response(y, len(Xs))
        return Xs, (y if self.units_ is None else self.units_.response(y)), mean0, scale0

    def _likelihood(self, X: Any, y: Any, f0_mean: Any, f0_scale: Any) -> Likelihood:
        return Likelihood(self._model.spec, *self._observed(X, y, f0_mean, f0_scale))

    # -- the posterior --------------------------------------------------------------------------------------
    def sample_posterior(self, X: Any, y: Any, f0_mean: Any = None, f0_scale: Any = None, **kwargs: Any):
        """NUTS from the fitted MLE (:func:`bayescmoe.sample_posterior`, whose keywords it passes on); the
        ``DataTree`` is kept as ``idata_`` and returned.  A built model samples where it was fitted, in
        standardised units (its priors are on those parameters), and ``idata_``'s posterior holds the draws in
        the data's units, as ``params_`` does."""
        from bayescmoe.fit.posterior import sample_posterior

        self._fitted()
        Xs, ys, mean0, scale0 = self._observed(X, y, f0_mean, f0_scale)
        kwargs.setdefault("seed", self.random_state)
        spec = self._model.spec
        self._idata_model = sample_posterior(spec, Xs, ys, init=self._model, f0_mean=mean0, f0_scale=scale0, **kwargs)
        self.idata_ = self._idata_model if self.units_ is None else _posterior_in(self._idata_model, spec, self.units_)
        return self.idata_

    def posterior_prompts(self, c: float = 1.0, r: float = 4.0):
        """How many prompts the posterior of :meth:`sample_posterior` supports: merge-truncate-merge on every draw
        (:func:`bayescmoe.posterior_prompts`), on the draws in the units they were sampled in (standardised for a
        built model), with each prompt's weight and its distance to the nearest other prompt."""
        from bayescmoe.theory.mtm import posterior_prompts

        return posterior_prompts(self._sampled(), self._model.spec, c=c, r=r)

    def _sampled(self):
        """The posterior of :meth:`sample_posterior` in the units it was sampled in; a FitError before it ran."""
        if not hasattr(self, "idata_"):
            raise FitError("no posterior yet; call sample_posterior(X, y) first")
        return self._idata_model

    def _posterior_draws(self, max_draws: int | None = None) -> list[np.ndarray]:
        """Packed posterior draws in the fit's units, chain by chain: all of them, or ``max_draws`` evenly spaced."""
        post, spec = self._sampled().posterior, self._model.spec
        arrays = {name: post[name].values.reshape((-1,) + post[name].shape[2:]) for name in spec.param_names}
        total = next(iter(arrays.values())).shape[0]
        keep = np.linspace(0, total - 1, min(max_draws or total, total)).round().astype(int)
        return [spec.layout.pack({k: v[i] for k, v in arrays.items()}) for i in keep]

    def posterior_loglik(
        self, X: Any, y: Any, f0_mean: Any = None, f0_scale: Any = None, max_draws: int | None = None
    ) -> np.ndarray:
        """Each row's log-likelihood at each posterior draw (draws, n): all draws chain by chain, or ``max_draws``
        evenly spaced (what PSIS-LOO and the posterior predictive density are made of)."""
        lik = self._likelihood(X, y, f0_mean, f0_scale)
        rows = np.array([lik.loglik_rows(theta) for theta in self._posterior_draws(max_draws)])
        return rows if self.units_ is None else self.units_.loglik(rows)

    def log_predictive_density(
        self, X: Any, y: Any, f0_mean: Any = None, f0_scale: Any = None, max_draws: int = 1000
    ) -> np.ndarray:
        """Each row's posterior predictive log density, ``log mean_s p(y | x, theta_s)`` over posterior draws."""
        rows = self.posterior_loglik(X, y, f0_mean, f0_scale, max_draws)
        return special.logsumexp(rows, axis=0) - np.log(len(rows))

    def _posterior_mixtures(self, X: Any, max_draws: int, f0_mean: Any, f0_scale: Any, need_scale: bool = True):
        """The mixture at each of ``max_draws`` posterior draws (the covariates and the frozen model's
        predictions computed once)."""
        thetas = self._posterior_draws(max_draws)
        inputs = self._inputs(X, f0_mean, f0_scale, need_scale)
        for theta in thetas:
            yield self._user(*self._mixture(*inputs, self._model.spec.layout.unpack(theta)))

    def posterior_mean(self, X: Any, f0_mean: Any = None, max_draws: int = 1000) -> np.ndarray:
        """The posterior predictive mean of y at each row: the mixture mean averaged over posterior draws."""
        mixtures = self._posterior_mixtures(X, max_draws, f0_mean, None, need_scale=False)
        return np.mean([self._mean(weights, means) for weights, means, _ in mixtures], axis=0)

    def posterior_predictive(self, X: Any, n_draws: int = 1000, f0_mean: Any = None, f0_scale: Any = None):
        """Draws of y at each row from the posterior predictive: each from its own posterior draw (n_draws, n)."""
        rng = np.random.default_rng(self.random_state)
        mixtures = self._posterior_mixtures(X, n_draws, f0_mean, f0_scale)
        return np.array([self._draw(rng, *mixture, 1)[0] for mixture in mixtures])
