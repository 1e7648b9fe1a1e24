"""A scikit-learn style estimator around :func:`bayescmoe.fit_mle`."""

from __future__ import annotations

from typing import Any

import numpy as np

from bayescmoe.data import check_data, check_f0
from bayescmoe.exceptions import FitError
from bayescmoe.experts import get_expert
from bayescmoe.mle import fit_mle
from bayescmoe.objective import Likelihood
from bayescmoe.results import FitResult
from bayescmoe.simulate import gate_probability, mixture_weights, prompt_means
from bayescmoe.spec import Spec, load_spec

__all__ = ["ContaminatedMoE"]


class ContaminatedMoE:
    """The contaminated mixture of experts as a scikit-learn style regressor.

    ``__init__`` only stores its arguments; :meth:`fit` validates them and fits
    the MLE; fitted state ends in ``_``.

    Parameters
    ----------
    spec : Spec or str
        The setting: a name from ``models/`` or a TOML path.  Its truth is not
        used; its pre-trained expert, prompt structure and box are.
    init, n_starts, bounds, maxiter :
        As in :func:`bayescmoe.fit_mle`.
    random_state : int, optional
        Seeds the random starts.

    Attributes
    ----------
    params_ : dict
        The estimates (MODEL.md names).
    fit_ : FitResult
        The full result (standard errors, log-likelihood, summary...).
    converged_, n_iter_ :
        From the optimiser.

    Examples
    --------
    >>> import bayescmoe as bc
    >>> X, y, _ = bc.simulate("softmax_distinguishable", n=1000, seed=0)
    >>> est = bc.ContaminatedMoE("softmax_distinguishable", random_state=0).fit(X, y)
    >>> est.predict(X[:3]).shape, est.predict_gate(X[:3]).shape
    ((3,), (3,))
    """

    def __init__(
        self,
        spec: Spec | str,
        *,
        init: Any = "multistart",
        n_starts: int = 10,
        bounds: dict | None = None,
        maxiter: int = 200,
        random_state: int | None = None,
    ):
        self.spec = spec
        self.init = init
        self.n_starts = n_starts
        self.bounds = bounds
        self.maxiter = maxiter
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments (scikit-learn's convention)."""
        keys = ("spec", "init", "n_starts", "bounds", "maxiter", "random_state")
        return {k: getattr(self, k) for k in keys}

    def set_params(self, **params: Any) -> ContaminatedMoE:
        for key, value in params.items():
            if key not in self.get_params():
                raise ValueError(f"unknown parameter {key!r}; valid: {', '.join(self.get_params())}")
            setattr(self, key, value)
        return self

    def fit(self, X: Any, y: Any, f0_mean: Any = None, f0_scale: Any = None) -> ContaminatedMoE:
        """Fit the MLE; returns ``self``.

        ``f0_mean`` / ``f0_scale``: for a spec whose frozen expert's mean (scale) comes with the data, one
        value per row (the mean also as a fitted model with ``predict(X)``).
        """
        self.spec_ = load_spec(self.spec)
        self.fit_: FitResult = fit_mle(
            self.spec_,
            X,
            y,
            init=self.init,
            n_starts=self.n_starts,
            seed=self.random_state,
            bounds=self.bounds,
            maxiter=self.maxiter,
            f0_mean=f0_mean,
            f0_scale=f0_scale,
        )
        self.params_ = self.fit_.params
        self.converged_ = self.fit_.converged
        self.n_iter_ = self.fit_.n_iter
        self.n_features_in_ = self.spec_.dim
        return self

    def _fitted(self) -> Spec:
        if not hasattr(self, "params_"):
            raise FitError("this ContaminatedMoE is not fitted yet; call fit(X, y) first")
        return self.spec_

    def _X(self, X: Any) -> np.ndarray:
        spec = self._fitted()
        return check_data(spec, X, np.zeros(np.shape(X)[0] if np.ndim(X) else 0))[0]

    def predict_gate(self, X: Any) -> np.ndarray:
        """The prompts' weights for each row of ``X``: ``g(x)`` (n,) for one prompt written with ``[prompt]``,
        else (n, K)."""
        X = self._X(X)
        return gate_probability(self.spec_, X, self.params_)

    def predict(self, X: Any, f0_mean: Any = None) -> np.ndarray:
        """The mixture mean ``w_0(x) m0(x) + sum_k w_k(x) h_k(x)`` for each row of ``X``.

        Every pre-trained family is symmetric about its location, so ``m0(x)`` is its mean (a Student-t
        with ``df <= 1`` has none: NaN is returned then).  ``f0_mean``: the frozen expert's mean at these
        rows, for a spec that takes it from the data.
        """
        X = self._X(X)
        spec = self.spec_
        weights = mixture_weights(spec, X, self.params_)
        out = (weights[:, -spec.K :] * prompt_means(spec, X, self.params_)).sum(axis=1)
        pre = spec.pretrained
        if pre is not None:
            mean0, _ = check_f0(spec, X, f0_mean, None if not pre.scale_from_data else np.ones(len(X)))
            if mean0 is None:
                mean0 = get_expert(pre.expert)(X @ np.array(pre.eta) + pre.intercept)
            if pre.family == "student_t" and pre.df <= 1.0:
                mean0 = np.full(len(X), np.nan)
            out = out + weights[:, 0] * mean0
        return out

    def score(self, X: Any, y: Any, f0_mean: Any = None, f0_scale: Any = None) -> float:
        """Mean log-likelihood per observation (higher is better)."""
        spec = self._fitted()
        X, y = check_data(spec, X, y)
        f0_mean, f0_scale = check_f0(spec, X, f0_mean, f0_scale)
        return Likelihood(spec, X, y, f0_mean, f0_scale).value(spec.layout.pack(self.params_)) / len(y)
