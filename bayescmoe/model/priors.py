"""Priors on the estimated parameters: flat on the box for the MLE, weakly informative for MAP and NUTS.

A prior is either a :class:`Prior` (a PyMC distribution's name and keyword
arguments, turned into a PyMC object only when a model is built) or any PyMC
distribution made with ``.dist()``, e.g. ``pm.Laplace.dist(0, 1)``.  Scalar
distributions given for the vectors ``beta`` and ``eta`` are resized to one
independent copy per covariate.

The weakly informative defaults, :data:`WEAK_PRIORS`, and why:

* ``beta, tau, eta, b ~ Normal(0, 2.5)``: the scale Gelman et al. (2008) recommend
  for logistic-regression coefficients on inputs of unit scale (the covariates of
  the named specs live in [-1, 1] or are standard normal); it keeps gate logits
  and prompt pre-activations within a few units without excluding the box.
* ``nu ~ LogNormal(0, 1.5)``: a variance is a scale, so the prior is symmetric on
  the log scale; its central 95% covers about [0.05, 19], and its zero density at
  ``nu = 0`` removes the degenerate spike of a Gaussian component collapsing on
  one observation, which makes a mixture likelihood unbounded.
* ``lam ~ Beta(1, 1)``: uniform on (0, 1); the constant-gating papers study lam*
  near 0 (prompt vanishing) and a shrinking prior there would fake the effect.  With several prompts
  (a spec written with ``[[prompts]]``) the weights of the frozen expert and of the prompts are
  ``Dirichlet(1, ..., 1)``, uniform on the simplex, for the same reason; it is also the flat prior.

With several prompts each prior applies to every estimated entry: the reference prompt's gate (no
frozen expert) and ``b`` of a prompt without an intercept are not parameters and get none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pymc as pm
from pymc.distributions.distribution import Distribution
from pymc.distributions.shape_utils import change_dist_size
from pytensor.tensor import TensorVariable

from bayescmoe.exceptions import SpecError
from bayescmoe.model.spec import Spec

__all__ = ["Prior", "WEAK_PRIORS", "resolve_priors", "free_shape"]


@dataclass(frozen=True)
class Prior:
    """A PyMC distribution by name, e.g. ``Prior("Normal", mu=0.0, sigma=2.5)``.

    >>> Prior("Normal", mu=0.0, sigma=2.5)
    Normal(mu=0.0, sigma=2.5)
    >>> Prior("Gausian")
    Traceback (most recent call last):
    ...
    bayescmoe.exceptions.SpecError: unknown PyMC distribution 'Gausian'; use a continuous distribution of pymc such as Normal, StudentT, HalfNormal, LogNormal, Beta, Uniform, Flat
    """

    distribution: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __init__(self, distribution: str, **kwargs: Any):
        cls = getattr(pm, distribution, None)
        if not (isinstance(cls, type) and issubclass(cls, Distribution)):
            raise SpecError(
                f"unknown PyMC distribution {distribution!r}; use a continuous distribution of "
                "pymc such as Normal, StudentT, HalfNormal, LogNormal, Beta, Uniform, Flat"
            )
        object.__setattr__(self, "distribution", distribution)
        object.__setattr__(self, "kwargs", MappingProxyType(dict(kwargs)))

    def dist(self, size: int | None = None) -> TensorVariable:
        """The PyMC distribution (``.dist()``), of ``size`` copies if given."""
        cls = getattr(pm, self.distribution)
        # float64 arrays: pytensor would turn a Python float such as 2.5 into a float32 constant
        kwargs = {
            k: np.asarray(v, dtype=np.float64) if isinstance(v, (int, float, list, tuple, np.ndarray)) else v
            for k, v in self.kwargs.items()
        }
        return cls.dist(**kwargs, size=size)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.distribution}({args})"


#: Weakly informative defaults for MAP and NUTS (see the module docstring for the reasons).
WEAK_PRIORS: Mapping[str, Prior] = MappingProxyType(
    {
        "beta": Prior("Normal", mu=0.0, sigma=2.5),
        "tau": Prior("Normal", mu=0.0, sigma=2.5),
        "eta": Prior("Normal", mu=0.0, sigma=2.5),
        "b": Prior("Normal", mu=0.0, sigma=2.5),
        "nu": Prior("LogNormal", mu=0.0, sigma=1.5),
        "lam": Prior("Beta", alpha=1.0, beta=1.0),
    }
)


def resolve_priors(spec: Spec, priors: str | Mapping[str, Any] | None) -> dict[str, TensorVariable]:
    """PyMC distributions (``.dist()`` objects of the right size) for each parameter of ``spec``.

    Parameters
    ----------
    priors : None, "flat", "weak" or dict
        ``None`` or ``"flat"``: uniform on the spec's box, so that the posterior mode
        is the box-constrained MLE.  ``"weak"``: :data:`WEAK_PRIORS`.  A dict maps
        parameter names to a :class:`Prior` or a PyMC ``.dist()``; names it leaves
        out get the weakly informative default.
    """
    if priors is not None and not isinstance(priors, (str, Mapping)):
        raise SpecError(f"priors must be None, 'flat', 'weak' or a dict of priors, got {priors!r}")
    if priors is None or priors == "flat":
        chosen: dict[str, Any] = {name: Prior("Uniform", lower=lo, upper=hi) for name, (lo, hi) in spec.bounds.items()}
    elif priors == "weak":
        chosen = dict(WEAK_PRIORS)
    elif isinstance(priors, Mapping):
        unknown = sorted(set(priors) - set(spec.param_names))
        if unknown:
            raise SpecError(
                f"prior given for unknown parameter {unknown[0]!r}; parameters of {spec.name}: "
                f"{', '.join(spec.param_names)}"
            )
        chosen = dict(WEAK_PRIORS) | dict(priors)
    else:
        raise SpecError(f"priors must be None, 'flat', 'weak' or a dict of priors, got {priors!r}")
    if _simplex(spec) and not (isinstance(priors, Mapping) and "lam" in priors):  # flat and weak alike
        chosen["lam"] = Prior("Dirichlet", a=np.ones(free_shape(spec, "lam")[0]))
    return {name: _as_dist(name, chosen[name], spec) for name in spec.param_names}


def free_shape(spec: Spec, name: str) -> tuple[int, ...]:
    """The shape of ``name``'s estimated entries: a row per estimated prompt for ``(K, d)`` parameters; for
    ``lam`` with several prompts, the weights of every component (a point of the simplex)."""
    shape = spec.layout.shapes[name]
    if not spec.multi:
        return shape
    if name == "lam":
        return (spec.K + 1,) if spec.has_pretrained else (spec.K,)
    estimated = spec.layout.estimated(name)
    if len(shape) == 2:
        return (int(estimated.reshape(shape).any(axis=1).sum()), shape[1])
    return (int(estimated.sum()),)


def _simplex(spec: Spec) -> bool:
    return spec.multi and spec.gating == "constant"


def _as_dist(name: str, prior: Any, spec: Spec) -> TensorVariable:
    shape = free_shape(spec, name)
    if name == "lam" and _simplex(spec):
        dist = prior.dist() if isinstance(prior, Prior) else prior
        if not isinstance(dist, TensorVariable) or dist.type.shape[-1:] != shape:
            raise SpecError(
                f"prior for 'lam' with {spec.K} prompts is over the weights of every component: a Dirichlet of "
                f"{shape[0]} concentrations (frozen expert first), e.g. bayescmoe.Prior('Dirichlet', a=[1.0] * {shape[0]})"
            )
        return dist
    size = shape if shape else None
    if isinstance(prior, Prior):
        return prior.dist(size=size)
    if not isinstance(prior, TensorVariable) or prior.owner is None:
        raise SpecError(
            f"prior for {name!r} must be a bayescmoe.Prior or a PyMC distribution made with .dist(), got {prior!r}"
        )
    if size is not None and prior.type.ndim == 0:
        return change_dist_size(prior, size)
    expected = shape
    static = prior.type.shape
    if len(static) != len(expected) or any(s is not None and s != e for s, e in zip(static, expected)):
        raise SpecError(f"prior for {name!r} has shape {static}; expected {expected or 'a scalar'}")
    return prior
