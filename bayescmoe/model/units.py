"""The door through which a user's data enter the estimators: standardised units inside, the user's outside
(MODEL.md section 9).

A real response has units and an offset (prices in dollars, heights in inches), and so do the covariates; a
spec's box and the random starts are absolute.  :class:`Units` maps the data to standardised units,

    x_std = (x - x_center) / x_scale,      y_std = (y - y_center) / y_scale,

the frozen expert alike (its mean as y, its scale by ``y_scale`` or, for a normal's variance, ``y_scale^2``),
and maps an estimate back.  The map is an exact reparametrisation of the model where the model allows it:

* the gate: ``beta . x_std + tau = (beta / x_scale) . x + (tau - beta . x_center / x_scale)``, always;
* a prompt's argument ``eta . x_std + b`` likewise, which needs an intercept ``b``: without one the
  covariates are only scaled (``x_center = 0``);
* a prompt's mean in the user's units is ``y_center + y_scale phi(eta . x + b)``: for a linear expert that is
  again a linear expert (``eta y_scale``, ``y_center + y_scale b``), reported as such; for a bounded or curved
  expert (tanh, sigmoid, GELU, ReLU) its argument's coefficients are reported in the user's covariate units
  and its output keeps the map, so that the expert's range is the response's (a tanh prompt of prices spans
  ``y_center +- y_scale``).  The response is centred only when every prompt has an intercept;
* ``nu`` in the user's units is ``y_scale^2 nu_std``; the log-likelihood is lower by ``n log y_scale``.

Fitting ``(X A + c, a y + e)`` (``a > 0``; ``a < 0`` too for odd experts) standardises to the same numbers
as ``(X, y)``, so the fit is the same to round-off and maps back to the mapped estimate: the estimate does
not depend on the units.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from bayescmoe.model.spec import DEFAULT_BOUNDS, Pretrained, Spec

__all__ = ["Units", "NU_FLOOR", "standard_spec"]

#: The variance floor of the constrained MLE on a user's data (MODEL.md section 9), as a fraction of the
#: reference variance: the frozen expert's predictive variance where there is one, else the response's.
#: See :func:`standard_spec` for why this fraction.
NU_FLOOR = 1e-4
#: The box, in standardised units, of a spec fitted on a user's data (``bounds="data"``) where the spec's own
#: box leaves a parameter out.  Wide: a regime change in x is a steep gate (motorcycle data, mcycle: a logit
#: slope of 3.8 per ms, 49 per standard deviation of time), and a steep gate's logit at the data's mean, tau,
#: is its slope times the distance to the threshold.
DATA_BOUNDS = MappingProxyType(
    {"beta": (-100.0, 100.0), "tau": (-300.0, 300.0), "eta": (-100.0, 100.0), "b": (-100.0, 100.0),
     "nu": (NU_FLOOR, 100.0), "lam": (1e-3, 0.999)}
)  # fmt: skip


def _variance(family: str, scale: np.ndarray, df: float | None) -> np.ndarray:
    """The frozen expert's predictive variance from its scale in the family's meaning."""
    if family == "normal":
        return scale
    if family == "laplace":
        return 2.0 * scale**2
    return scale**2 * (df / (df - 2.0) if df is not None and df > 2.0 else 1.0)


@dataclass(frozen=True)
class Units:
    """An affine change of units of the covariates and the response (see the module docstring).

    >>> u = Units(np.array([10.0]), np.array([2.0]), 100.0, 5.0)
    >>> float(u.response(np.array([110.0]))[0]), float(u.covariates(np.array([[14.0]]))[0, 0])
    (2.0, 2.0)
    """

    x_center: np.ndarray
    x_scale: np.ndarray
    y_center: float
    y_scale: float

    @classmethod
    def of(cls, spec: Spec, X: np.ndarray, y: np.ndarray) -> Units:
        """The data's units: covariates by their means and SDs, the response by its mean and SD (means only where
        every prompt has an intercept to absorb them; a constant covariate or response keeps scale 1)."""
        centre = all(p.intercept for p in spec.prompts)
        x_scale = X.std(axis=0)
        y_scale = float(y.std())
        return cls(
            X.mean(axis=0) if centre else np.zeros(X.shape[1]),
            np.where(x_scale > 0, x_scale, 1.0),
            float(y.mean()) if centre else 0.0,
            y_scale if y_scale > 0 else 1.0,
        )

    # -- data -> standardised units ---------------------------------------------------------------
    def covariates(self, X: np.ndarray) -> np.ndarray:
        return (X - self.x_center) / self.x_scale

    def response(self, y: np.ndarray) -> np.ndarray:
        return (y - self.y_center) / self.y_scale

    def frozen_mean(self, mean: np.ndarray | None) -> np.ndarray | None:
        return None if mean is None else self.response(mean)

    def frozen_scale(self, family: str, scale):
        """A frozen scale in standardised units: a normal's variance over ``y_scale^2``, else over ``y_scale``."""
        if scale is None:
            return None
        return scale / (self.y_scale**2 if family == "normal" else self.y_scale)

    # -- standardised units -> the user's -------------------------------------------------------------
    def loglik(self, value: float | np.ndarray, n: int = 1):
        """A log-likelihood (or, with n = 1, each row's) in the user's units."""
        return value - n * np.log(self.y_scale)

    def params(self, spec: Spec, params: dict[str, Any]) -> dict[str, Any]:
        """Parameters estimated in standardised units, in the user's (leading axes, such as posterior draws'
        (chain, draw), are kept)."""
        s, c, a, e = self.x_scale, self.x_center, self.y_scale, self.y_center
        out = dict(params)
        if "beta" in params:
            beta = np.asarray(params["beta"], float)
            out["beta"] = _like(params["beta"], beta / s)
            out["tau"] = _like(params["tau"], np.asarray(params["tau"], float) - (beta * (c / s)).sum(axis=-1))
        eta = np.asarray(params["eta"], float)
        linear = self._linear(spec)  # per prompt: the output map folds into a linear expert
        factor = np.where(linear, a, 1.0)
        shift = (eta * (c / s)).sum(axis=-1)
        b = np.asarray(params.get("b", 0.0), float) - shift
        out["eta"] = _like(params["eta"], eta / s * (factor[:, None] if spec.multi else factor[0]))
        b_user = b * (factor if spec.multi else factor[0]) + e * (linear if spec.multi else linear[0])
        if "b" in params:
            out["b"] = _like(params["b"], b_user)
        out["nu"] = _like(params["nu"], np.asarray(params["nu"], float) * a**2)
        return out

    def output_map(self, spec: Spec) -> list[tuple[float, float]]:
        """Per prompt, ``(y_center, y_scale)`` of a prompt mean ``y_center + y_scale phi(eta . x + b)`` in the
        user's units, or ``(0, 1)`` where the map is folded into a linear expert's coefficients."""
        return [(0.0, 1.0) if lin else (self.y_center, self.y_scale) for lin in self._linear(spec)]

    @staticmethod
    def _linear(spec: Spec) -> np.ndarray:
        return np.array([p.expert == "linear" for p in spec.prompts])

    def jacobian(self, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
        """``(offset, A)`` with ``theta_user = offset + A theta_std`` on the layout's flat vectors (the map is
        affine): for the delta method's standard errors, ``cov_user = A cov_std A'``."""
        lay = spec.layout
        user = lambda theta: lay.pack(self.params(spec, lay.unpack(theta)))  # noqa: E731
        offset = user(np.zeros(lay.size))
        A = np.column_stack([user(col) - offset for col in np.eye(lay.size)]) if lay.size else np.zeros((0, 0))
        return offset, A

    def standard_params(self, spec: Spec, params: dict[str, Any]) -> dict[str, Any]:
        """The inverse of :meth:`params`: parameters in the user's units, in standardised ones."""
        return spec.layout.unpack(self.to_standard(spec, spec.layout.pack(params)))

    def to_standard(self, spec: Spec, flat: np.ndarray) -> np.ndarray:
        """The inverse of the affine map on the layout's flat vectors, one (p,) or many (S, p): from the user's
        units to standardised ones."""
        offset, A = self.jacobian(spec)
        flat = np.asarray(flat, float)
        return np.linalg.solve(A, (flat - offset).T).T


def _like(template: Any, value: np.ndarray):
    """``value`` as a float where ``template`` is a scalar, else as an array."""
    return float(value) if np.ndim(template) == 0 and np.ndim(value) == 0 else np.asarray(value)


def standard_spec(spec: Spec, units: Units, f0_variance: np.ndarray | None) -> Spec:
    """``spec`` as fitted in standardised units: its frozen expert's mean and scale given with the (mapped)
    data, and a box relative to the data.

    The box is the spec's own in standardised units where it differs from the defaults (:data:`DATA_BOUNDS`
    elsewhere), except the variance, whose box is the floor and 100 times the reference: ``nu >= NU_FLOOR * v``, with ``v`` the frozen expert's mean predictive variance on the data
    (standardised), or 1 (the response's variance) without one.  A Gaussian prompt whose variance goes to 0 on
    a few rows sends the likelihood to infinity (MODEL.md section 9); the floor makes the MLE the constrained
    MLE of Hathaway (1985).  ``NU_FLOOR = 1e-4`` (a prompt SD 3% of the reference SD) is below the variance of
    every prompt or expert at the best non-degenerate optima of the benchmark's real datasets
    (benchmarks/RESULTS.md, "Global optima on real data") and caps what a spike can gain per row at
    ``0.5 log(1 / NU_FLOOR) = 3.5`` nats over a component of the reference width.  A prompt that ends at the
    floor, or whose gate holds a few rows, is reported (:class:`~bayescmoe.exceptions.DegenerateWarning`).
    """
    pre = spec.pretrained
    reference = 1.0 if f0_variance is None else float(np.mean(f0_variance))
    own = {k: v for k, v in spec.bounds.items() if tuple(v) != tuple(DEFAULT_BOUNDS.get(k, ())) and k != "nu"}
    bounds = dict(DATA_BOUNDS) | own  # the spec's own box where it says more than the defaults
    upper = spec.bounds.get("nu", DATA_BOUNDS["nu"])[1]
    bounds["nu"] = (NU_FLOOR * reference, max(upper, 100.0 * reference))
    bounds = {k: v for k, v in bounds.items() if k in spec.param_names}
    if pre is not None:
        pre = replace(pre, expert=None, eta=None, intercept=0.0, scale=None)  # mean and scale come with the data
    return replace(spec, pretrained=pre, bounds=MappingProxyType(bounds), schedules=())


def frozen_variance(pre: Pretrained | None, scale: np.ndarray | None) -> np.ndarray | None:
    """The frozen expert's predictive variance per row, from its per-row scale (None without a frozen expert)."""
    return None if pre is None or scale is None else _variance(pre.family, np.asarray(scale, float), pre.df)
