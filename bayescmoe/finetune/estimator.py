"""A scikit-learn style estimator: the contaminated MoE around a frozen pre-trained model.

Two ways to say what to fit:

* ``ContaminatedMoE(spec)``: a named setting or a TOML spec, its frozen expert a formula (or data);
* ``ContaminatedMoE(pretrained=model, family="normal", scale=s, prompts=K)``: the frozen expert is a
  fitted model (anything with ``predict(X)``), its predictive distribution ``family`` with scale ``s``
  (a normal's variance, a Laplace's or Student-t's scale: :func:`bayescmoe.finetune.adapt.predictive_scale`
  estimates it on held-out data), and ``K`` prompts (or a list of expert names) are gated on the
  covariates.  ``pretrained=None`` is the plain softmax-gated mixture of ``K`` experts.

The estimator follows scikit-learn's conventions: ``__init__`` only stores its arguments, ``fit``
validates them, fitted state ends in ``_``, ``get_params``/``set_params`` and ``sklearn.base.clone``
work (the clone shares the frozen model, which is never refitted), and it works in a ``Pipeline`` and
with ``cross_val_score`` (``score`` is the mean log-likelihood: higher is better).  scikit-learn itself
is not needed.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import special

from bayescmoe.exceptions import FitError, ScaleWarning
from bayescmoe.fit.mle import fit_mle
from bayescmoe.fit.results import FitResult
from bayescmoe.model.data import check_covariates, check_data, check_f0, check_response
from bayescmoe.model.experts import EXPERTS, get_expert
from bayescmoe.model.families import get_family, residual_scale
from bayescmoe.model.likelihood import Likelihood
from bayescmoe.model.simulate import gate_probability, mixture_weights, prompt_means
from bayescmoe.model.spec import Spec, load_spec, spec_from_dict

__all__ = ["ContaminatedMoE"]

_PARAMS = (
    "spec", "pretrained", "family", "scale", "df", "prompts", "expert", "intercept", "gating", "standardize",
    "transform", "init", "n_starts", "bounds", "maxiter", "random_state",
)  # fmt: skip
#: Parameters holding objects whose own parameters ``get_params(deep=True)`` and ``set_params`` reach as
#: ``name__param`` (scikit-learn's convention for meta-estimators).
_NESTED = ("pretrained", "transform")
#: A frozen model's given scale this many times above or below what its residuals on the fitting data say
#: draws a ScaleWarning.
SCALE_RATIO = 100.0


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


def _check_scale(scale: Any, family: str) -> None:
    meaning = get_family(family).scale_meaning
    ok = isinstance(scale, (int, float, np.integer, np.floating)) and not isinstance(scale, bool)
    if not ok or not (np.isfinite(scale) and scale > 0):
        raise FitError(
            f"scale must be a positive number, the {meaning} of the frozen model's predictive distribution "
            f"(family {family!r}{'; the square of a standard deviation' if family == 'normal' else ''}), got {scale!r}"
        )


def _predict(model: Any, X: Any) -> np.ndarray:
    """``model.predict(X)`` with ``X`` as the user gave it, or one error that names the call."""
    try:
        return np.asarray(model.predict(X), dtype=float)
    except Exception as err:  # the user's model: say which call failed
        raise FitError(f"the frozen model's predict(X) failed: {type(err).__name__}: {err}") from None


def _clone(transformer: Any) -> Any:
    """An unfitted copy of a scikit-learn transformer (its ``fit`` runs on every ``fit`` of the estimator)."""
    from sklearn.base import clone

    return clone(transformer)


def prompt_experts(prompts: Any, expert: str = "linear") -> list[str]:
    """The prompts' experts from ``prompts``: a count K >= 1 of ``expert``, or a list of expert names.

    >>> prompt_experts(2), prompt_experts(["tanh", "linear"])
    (['linear', 'linear'], ['tanh', 'linear'])
    >>> prompt_experts(2.5)
    Traceback (most recent call last):
    ...
    bayescmoe.exceptions.FitError: prompts must be a whole number K >= 1 or a list of expert names (linear, tanh, ...), got 2.5
    """
    if isinstance(prompts, (int, np.integer)) and not isinstance(prompts, (bool, np.bool_)) and prompts >= 1:
        experts = [expert] * int(prompts)
    elif isinstance(prompts, (list, tuple)) and prompts and all(isinstance(e, str) for e in prompts):
        experts = list(prompts)
    else:
        raise FitError(
            f"prompts must be a whole number K >= 1 or a list of expert names (linear, tanh, ...), got {prompts!r}"
        )
    for name in experts:
        if name not in EXPERTS:
            raise FitError(f"unknown expert {name!r}; choose one of {', '.join(sorted(EXPERTS))}")
    return experts


class ContaminatedMoE:
    """The contaminated mixture of experts as a scikit-learn style regressor.

    Parameters
    ----------
    spec : Spec or str, optional
        A setting (a name from ``models/`` or a TOML path): its truth is not used; its frozen expert,
        prompts and box are.  Leave it out to build the model from the arguments below.
    pretrained : object with ``predict(X)``, optional
        The frozen pre-trained model; its predictions at each row are the frozen expert's mean.  ``None``
        without a spec: the plain mixture of experts (prompt 1 the gate's reference).
        It is called on ``X`` exactly as the user passes it (a DataFrame stays a DataFrame, so a model that
        selects columns by name works); only the gate and the prompts see numbers.
    family : {"normal", "laplace", "student_t"}
        The frozen expert's predictive family around the model's predictions.
    scale : float, optional
        Its scale, in the family's meaning: for ``normal`` the **variance** (the square of a standard
        deviation), for ``laplace`` the scale b, for ``student_t`` the scale (with ``df``).  Required with
        ``pretrained`` unless ``f0_scale=`` is given to ``fit`` and ``predict`` (one value per row).  A
        :class:`~bayescmoe.exceptions.ScaleWarning` says when it is over 100 times above or below the scale
        of the frozen model's residuals on the fitting data (:func:`bayescmoe.finetune.adapt.predictive_scale`
        estimates it properly, on held-out source data).
    df : float, optional
        Degrees of freedom, for ``student_t``.
    prompts : int or list of str
        K >= 1 prompts of ``expert`` (and ``intercept``), or a list of expert names.
    expert, intercept :
        The prompts' mean function and whether they have an intercept (default linear with one).
    gating : {"softmax", "constant"}
    standardize : bool
        Built models only: fit in standardised units (``fit_mle(..., bounds="data")``, :mod:`bayescmoe.model.units`):
        the covariates, the response and the frozen expert mapped by the fitting data's means and standard
        deviations, the box and the variance floor relative to the data; the estimates, their standard errors
        and every prediction are reported in the data's units, so that they do not depend on them (a linear
        prompt's ``eta``, ``b`` are its slope and intercept; a bounded or curved one's mean is
        ``y_center + y_scale phi(eta . x + b)``, ``units_`` holding the map).  The frozen model always sees
        ``X`` as given.  ``False``: the default box, absolute, in the data's units.
    transform : scikit-learn transformer, optional
        Built models only: the gate's and the prompts' covariates are ``transform.fit_transform(X)`` (a
        clone, fitted at ``fit``), while the frozen model still sees ``X`` as given.  This is the place for
        preprocessing (one-hot encoding, splines, a scaler): a ``Pipeline`` step *in front of* the estimator
        would change what the frozen model sees.  Its parameters are reachable as ``transform__name``.
    init, n_starts, bounds, maxiter :
        As in :func:`bayescmoe.fit_mle`.
    random_state : int, optional
        Seeds the random starts (and the predictive draws).

    Attributes
    ----------
    spec_ : Spec
        The setting fitted (built from the arguments when no spec was given).
    params_ : dict
        The estimates (MODEL.md names).
    fit_ : FitResult
        The full result (standard errors, log-likelihood, summary...).
    converged_, n_iter_, n_features_in_ :
        From the optimiser and the data.
    units_ : bayescmoe.model.units.Units or None
        The standardisation of a built model's fit (None with ``standardize=False`` or a spec).
    idata_ :
        After :meth:`sample_posterior`: the posterior (an ArviZ ``DataTree``).

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
        spec: Spec | str | None = None,
        *,
        pretrained: Any = None,
        family: str = "normal",
        scale: float | None = None,
        df: float | None = None,
        prompts: int | list[str] = 1,
        expert: str = "linear",
        intercept: bool = True,
        gating: str = "softmax",
        standardize: bool = True,
        transform: Any = None,
        init: Any = "multistart",
        n_starts: int | None = None,
        bounds: dict | None = None,
        maxiter: int = 200,
        random_state: int | None = None,
    ):
        self.spec = spec
        self.pretrained = pretrained
        self.family = family
        self.scale = scale
        self.df = df
        self.prompts = prompts
        self.expert = expert
        self.intercept = intercept
        self.gating = gating
        self.standardize = standardize
        self.transform = transform
        self.init = init
        self.n_starts = n_starts
        self.bounds = bounds
        self.maxiter = maxiter
        self.random_state = random_state

    # -- scikit-learn's protocol ----------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments (scikit-learn's convention); with ``deep``, also the parameters of the
        frozen model and of ``transform`` as ``pretrained__name`` / ``transform__name``."""
        out = {k: getattr(self, k) for k in _PARAMS}
        if deep:
            for key in _NESTED:
                value = out[key]
                if hasattr(value, "get_params") and not isinstance(value, type):
                    out |= {f"{key}__{k}": v for k, v in value.get_params(deep=True).items()}
        return out

    def set_params(self, **params: Any) -> ContaminatedMoE:
        """Set constructor arguments, and nested ones (``pretrained__name``, ``transform__name``) as
        scikit-learn's meta-estimators do.  The frozen model is shared with clones (it is never refitted), so
        ``pretrained__...`` changes that one object."""
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, nested_key, sub = key.partition("__")
            if name not in _PARAMS or (nested_key and name not in _NESTED):
                raise ValueError(
                    f"unknown parameter {key!r}; valid: {', '.join(_PARAMS)} (and pretrained__*, transform__*)"
                )
            if nested_key:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub in nested.items():
            target = getattr(self, name)
            if not hasattr(target, "set_params"):
                raise ValueError(f"{name} ({type(target).__name__}) has no set_params; cannot set {', '.join(sub)}")
            target.set_params(**sub)
        return self

    def __sklearn_clone__(self) -> ContaminatedMoE:
        """An unfitted copy with the same arguments; the frozen model is shared, never refitted, and ``transform``
        is cloned (scikit-learn's convention for an unfitted sub-estimator)."""
        params = self.get_params(deep=False)
        if params["transform"] is not None:
            params["transform"] = _clone(params["transform"])
        return type(self)(**params)

    def __sklearn_tags__(self):
        """scikit-learn's tags of a regressor (asked for by scikit-learn only, so it is installed then)."""
        from sklearn.utils import RegressorTags, Tags, TargetTags

        return Tags(estimator_type="regressor", target_tags=TargetTags(required=True), regressor_tags=RegressorTags())

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.get_params().items() if v is not None and k != "spec"}
        head = (
            [repr(self.spec if isinstance(self.spec, str) else getattr(self.spec, "name", None))] if self.spec else []
        )
        return f"ContaminatedMoE({', '.join(head + [f'{k}={v!r}' for k, v in shown.items()][:6])})"

    # -- building the model -----------------------------------------------------------------------
    def _build_spec(self, d: int) -> Spec:
        """The setting the arguments describe (their truth is a neutral placeholder: only fits use it)."""
        experts = prompt_experts(self.prompts, self.expert)
        K = len(experts)
        truth: dict[str, Any] = {"eta": [[0.0] * d] * K, "nu": [1.0] * K}
        if self.intercept:
            truth["b"] = [0.0] * K
        if self.gating == "softmax":
            truth |= {"beta": [[0.0] * d] * K, "tau": [0.0] * K}
        else:
            truth["lam"] = [0.5 / K] * K
        data: dict[str, Any] = {
            "name": "ContaminatedMoE",
            "description": "built by bayescmoe.ContaminatedMoE from its arguments",
            "dim": d,
            "gating": self.gating,
            "prompts": [{"expert": e, "intercept": bool(self.intercept)} for e in experts],
            "covariates": {"distribution": "normal"},
            "truth": truth,
            "bounds": dict(self.bounds or {}),
        }
        if self.pretrained is not None:
            if not hasattr(self.pretrained, "predict"):
                raise FitError(
                    f"pretrained must be a fitted model with predict(X), got {type(self.pretrained).__name__}"
                )
            if self.scale is not None:
                _check_scale(self.scale, self.family)
            data["pretrained"] = {
                "family": self.family,
                "mean": "data",
                "scale": "data" if self.scale is None else float(self.scale),
            }
            if self.df is not None:
                data["pretrained"]["df"] = self.df
        return spec_from_dict(data, source="ContaminatedMoE arguments")

    def _covariates(self, X: Any, fitting: bool = False) -> np.ndarray:
        """The gate's and prompts' covariates in the data's units: ``X`` checked (its columns against the fit's
        before anything else), and transformed by ``transform`` when there is one."""
        expected = None if fitting else self.n_features_in_
        if self.transform_ is None:
            Z = check_covariates(X, expected, who=type(self).__name__)
            columns = Z.shape[1]
        else:  # the transform reads X as given (strings for an encoder); its output must be numbers
            columns = np.shape(X)[1] if np.ndim(X) == 2 else 1
            if expected is not None and columns != expected:
                check_covariates(np.zeros((1, columns)), expected, who=type(self).__name__)
            if fitting:
                self.transform_.fit(X)
            Z = self.transform_.transform(X)
            Z = check_covariates(Z.toarray() if hasattr(Z, "toarray") else Z)
        if fitting:
            self.n_features_in_ = columns
        return Z if self.spec_ is None else check_data(self.spec_, Z, np.zeros(Z.shape[0]))[0]

    def _frozen(self, X: Any, Xs: np.ndarray, f0_mean: Any, f0_scale: Any, need_scale: bool = True):
        """The frozen expert's mean and scale at each row (None where the spec has them as formulas).  A fitted
        model is called on ``X`` as the user gave it (a DataFrame keeps its column names), never standardised."""
        if f0_mean is not None and hasattr(f0_mean, "predict"):
            f0_mean = _predict(f0_mean, X)
        if self.pretrained_ is not None:
            if f0_mean is None:
                f0_mean = _predict(self.pretrained_, X)
            if self.scale_ is None and f0_scale is None and need_scale:
                raise FitError(
                    "the frozen model's predictive scale is unknown: give scale= (estimate it on held-out data "
                    "with bayescmoe.finetune.adapt.predictive_scale) or f0_scale= per row"
                )
        pre = self.spec_.pretrained
        if not need_scale and pre is not None and pre.scale_from_data and f0_scale is None:
            f0_scale = np.ones(len(Xs))  # not used: the caller needs the means only
        return check_f0(self.spec_, Xs, f0_mean, f0_scale)

    # -- fitting ----------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, f0_mean: Any = None, f0_scale: Any = None) -> ContaminatedMoE:
        """Fit the MLE; returns ``self``.

        ``f0_mean`` / ``f0_scale``: the frozen expert's mean (scale) at each row, for a spec that takes
        them from the data (the mean also as a fitted model with ``predict(X)``); with ``pretrained`` the
        mean is ``pretrained.predict(X)``.
        """
        # the data first: a fit that fails on them leaves an earlier fit as it was
        n = len(check_covariates(X) if self.transform is None else np.zeros(np.shape(X)[0]))
        check_response(y, n)
        self._built = self.spec is None
        if not self._built and self.transform is not None:
            raise FitError("transform= is for a model built from arguments; a spec fixes its covariates")
        # what prediction uses is fixed at fit: set_params afterwards changes the next fit only
        self.__dict__.pop("idata_", None)  # a posterior of an earlier fit is not this fit's
        self.standardize_ = self._built and bool(self.standardize)
        self.pretrained_ = self.pretrained if self._built else None
        self.scale_ = self.scale
        self.transform_ = None if self.transform is None else _clone(self.transform)
        self.spec_ = None if self._built else load_spec(self.spec)
        Xs = self._covariates(X, fitting=True)
        if self._built:
            self.spec_ = self._build_spec(Xs.shape[1])
            Xs = check_data(self.spec_, Xs, np.zeros(len(Xs)))[0]
        mean0, scale0 = self._frozen(X, Xs, f0_mean, f0_scale)
        if self._built and self.scale_ is not None and mean0 is not None:
            self._warn_far_scale(check_data(self.spec_, Xs, y)[1] - mean0)
        self.fit_: FitResult = fit_mle(
            self.spec_,
            Xs,
            y,
            init=self.init,
            n_starts=self.n_starts,
            seed=self.random_state,
            bounds="data" if self.standardize_ else None if self._built else self.bounds,
            maxiter=self.maxiter,
            f0_mean=mean0,
            f0_scale=scale0,
        )
        # predictions are computed where the fit was (standardised units for a built model), then mapped back
        self.units_ = self.fit_.units
        self._model = self.fit_.standard if self.fit_.standard is not None else self.fit_
        self.params_ = self.fit_.params
        self.converged_ = self.fit_.converged
        self.n_iter_ = self.fit_.n_iter
        return self

    def _warn_far_scale(self, residual: np.ndarray) -> None:
        """A ScaleWarning when the given scale is over ``SCALE_RATIO`` times off the residuals' own."""
        own = residual_scale(residual, self.family, self.df)
        ratio = float(self.scale_) / own if own > 0 else np.inf
        if 1.0 / SCALE_RATIO <= ratio <= SCALE_RATIO:
            return
        meaning = get_family(self.family).scale_meaning
        hint = " (a standard deviation given where a variance is meant? square it)" if self.family == "normal" else ""
        warnings.warn(
            f"scale={self.scale_:.4g} is {ratio:.3g} times the scale of the frozen model's residuals on these data "
            f"({own:.4g}, the {self.family} family's {meaning}){hint}; scale is the {meaning} of the frozen model's "
            "predictive distribution: estimate it with bayescmoe.predictive_scale on held-out source data",
            ScaleWarning,
            stacklevel=3,
        )

    @property
    def _model_params(self) -> dict[str, Any]:
        """``params_`` in the units of the fit (what predictions compute with; ``params_`` stays the truth)."""
        if self.units_ is None:
            return self.params_
        return self.units_.standard_params(self._model.spec, self.params_)

    def _fitted(self) -> Spec:
        if not hasattr(self, "params_"):
            raise FitError("this ContaminatedMoE is not fitted yet; call fit(X, y) first")
        return self.spec_

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

    def _posterior_draws(self, max_draws: int | None = None) -> list[np.ndarray]:
        """Packed posterior draws in the fit's units, chain by chain: all of them, or ``max_draws`` evenly spaced."""
        if not hasattr(self, "idata_"):
            raise FitError("no posterior yet; call sample_posterior(X, y) first")
        post, spec = self._idata_model.posterior, self._model.spec
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
