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

from bayescmoe.exceptions import FitError, ScaleWarning
from bayescmoe.finetune.predictions import _Predictions
from bayescmoe.fit.mle import fit_mle
from bayescmoe.fit.results import FitResult
from bayescmoe.model.data import check_covariates, check_data, check_f0, check_response
from bayescmoe.model.experts import EXPERTS
from bayescmoe.model.families import get_family, residual_scale
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


class ContaminatedMoE(_Predictions):
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
