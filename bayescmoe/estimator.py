"""A scikit-learn style estimator around :func:`bayescmoe.fit_mle`."""

from __future__ import annotations

from typing import Any

import numpy as np

from bayescmoe.data import check_data
from bayescmoe.exceptions import FitError
from bayescmoe.experts import get_expert
from bayescmoe.mle import fit_mle
from bayescmoe.objective import Likelihood
from bayescmoe.results import FitResult
from bayescmoe.simulate import gate_probability
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

    def fit(self, X: Any, y: Any) -> ContaminatedMoE:
        """Fit the MLE; returns ``self``."""
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

    def predict_gate(self, X: Any) -> np.ndarray:
        """The prompt's weight ``g(x)`` for each row of ``X``."""
        spec = self._fitted()
        X, _ = check_data(spec, X, np.zeros(np.shape(X)[0] if np.ndim(X) else 0))
        return gate_probability(spec, X, self.params_)

    def predict(self, X: Any) -> np.ndarray:
        """The mixture mean ``(1 - g(x)) h0(x) + g(x) h(x)`` for each row of ``X``.

        Every pre-trained family is symmetric about its location, so ``h0(x)`` is its
        mean (a Student-t with ``df <= 1`` has none: NaN is returned then).
        """
        spec = self._fitted()
        X, _ = check_data(spec, X, np.zeros(np.shape(X)[0] if np.ndim(X) else 0))
        pre, p = spec.pretrained, self.params_
        mean0 = get_expert(pre.expert)(X @ np.array(pre.eta) + pre.intercept)
        if pre.family == "student_t" and pre.df <= 1.0:
            mean0 = np.full(len(X), np.nan)
        mean1 = get_expert(spec.prompt.expert)(X @ p["eta"] + p.get("b", 0.0))
        g = gate_probability(spec, X, p)
        return (1.0 - g) * mean0 + g * mean1

    def score(self, X: Any, y: Any) -> float:
        """Mean log-likelihood per observation (higher is better)."""
        spec = self._fitted()
        X, y = check_data(spec, X, y)
        return Likelihood(spec, X, y).value(spec.layout.pack(self.params_)) / len(y)
