"""The pre-trained families ``f0`` and the Gaussian prompt (MODEL.md section 1).

A family turns a mean ``m`` and the known scale ``s0`` (and ``df``) into a PyMC
distribution, whose ``pm.logp`` the model uses, and into numpy draws, which the
simulator uses.  ``s0`` means the **variance** for ``normal``, the scale ``b``
for ``laplace`` and the scale for ``student_t``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import special, stats

from bayescmoe.exceptions import SpecError

__all__ = ["Family", "FAMILIES", "get_family", "residual_scale"]


@dataclass(frozen=True)
class Family:
    """A pre-trained family.

    Attributes
    ----------
    name : str
        Registry key.
    scale_meaning : str
        What the spec's ``scale`` is for this family.
    needs_df : bool
        Whether the family takes degrees of freedom ``df``.
    dist : callable
        ``dist(mu, scale, df) -> pm.Distribution.dist(...)``.
    sample : callable
        ``sample(rng, mu, scale, df) -> ndarray`` of the shape of ``mu``.
    logpdf : callable
        ``logpdf(y, mu, scale, df) -> ndarray``, numpy (the density loss uses it).
    """

    name: str
    scale_meaning: str
    needs_df: bool
    dist: Callable
    sample: Callable
    logpdf: Callable


def _f64(value):
    """A float64 tensor: pytensor would otherwise turn a Python float such as 0.5 into float32."""
    return value if isinstance(value, pt.TensorVariable) else pt.constant(np.float64(value))


def _student_t_logpdf(y, mu, scale, df):
    z = (y - mu) / scale
    const = special.gammaln((df + 1) / 2) - special.gammaln(df / 2) - 0.5 * np.log(df * np.pi) - np.log(scale)
    return const - (df + 1) / 2 * np.log1p(z * z / df)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "normal",
            "variance",
            False,
            lambda mu, scale, df=None: pm.Normal.dist(mu=mu, sigma=pt.sqrt(_f64(scale))),
            lambda rng, mu, scale, df=None: rng.normal(mu, np.sqrt(scale)),
            lambda y, mu, scale, df=None: stats.norm.logpdf(y, mu, np.sqrt(scale)),
        ),
        Family(
            "laplace",
            "scale b",
            False,
            lambda mu, scale, df=None: pm.Laplace.dist(mu=mu, b=_f64(scale)),
            lambda rng, mu, scale, df=None: rng.laplace(mu, scale),
            # the closed form: scipy's laplace.logpdf is log(pdf), -inf once the pdf underflows
            lambda y, mu, scale, df=None: -np.log(2.0 * scale) - np.abs(y - mu) / scale,
        ),
        Family(
            "student_t",
            "scale",
            True,
            lambda mu, scale, df: pm.StudentT.dist(nu=_f64(df), mu=mu, sigma=_f64(scale)),
            lambda rng, mu, scale, df: mu + scale * rng.standard_t(df, size=np.shape(mu)),
            _student_t_logpdf,
        ),
    )
}


def get_family(name: str) -> Family:
    """Return the pre-trained family called ``name``.

    >>> get_family("laplace").scale_meaning
    'scale b'
    """
    try:
        return FAMILIES[name]
    except KeyError:
        raise SpecError(f"unknown family {name!r}; choose one of {', '.join(sorted(FAMILIES))}") from None


def residual_scale(residual: np.ndarray, family: str, df: float | None = None) -> float:
    """The maximum-likelihood scale of ``family`` for residuals around 0, in the family's own meaning of
    ``scale`` (normal: the mean square, a variance; laplace: the mean absolute value; student_t: scipy's fit
    with ``df`` fixed and location 0).

    >>> residual_scale(np.array([1.0, -1.0, 3.0, -3.0]), "normal"), residual_scale(np.array([1.0, -3.0]), "laplace")
    (5.0, 2.0)
    """
    residual = np.asarray(residual, dtype=float)
    if family == "normal":
        return float(np.mean(residual**2))
    if family == "laplace":
        return float(np.mean(np.abs(residual)))
    get_family(family)  # an unknown name: the registry's error
    if df is None:
        raise SpecError("student_t needs df= (degrees of freedom)")
    return float(stats.t.fit(residual, fdf=df, floc=0.0)[2])


def prompt_dist(mu, nu):
    """The Gaussian prompt expert ``N(mu, nu)`` with **variance** ``nu``, as a PyMC distribution."""
    return pm.Normal.dist(mu=mu, sigma=pt.sqrt(_f64(nu)))
