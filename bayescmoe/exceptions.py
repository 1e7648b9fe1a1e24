"""The exceptions and warnings of bayescmoe.

Every error the library raises on bad input is a :class:`BayescmoeError`, so the
command line can print its message as one line and exit non-zero.
"""

from __future__ import annotations

__all__ = [
    "BayescmoeError",
    "SpecError",
    "DataError",
    "FitError",
    "ConvergenceWarning",
    "IdentifiabilityWarning",
    "BoundaryWarning",
    "OutlierWarning",
    "LabelSwitchingWarning",
    "ScaleWarning",
    "DegenerateWarning",
]


class BayescmoeError(Exception):
    """Base class of every error raised by bayescmoe on bad input."""


class SpecError(BayescmoeError, ValueError):
    """A model specification (TOML file or name) is invalid or cannot be found."""


class DataError(BayescmoeError, ValueError):
    """Covariates or responses are malformed: NaN, wrong shape, unreadable file..."""


class FitError(BayescmoeError, RuntimeError):
    """An estimator was called with arguments it cannot use (a start outside the bounds...)."""


class ConvergenceWarning(UserWarning):
    """An optimizer stopped without meeting its convergence criterion."""


class IdentifiabilityWarning(UserWarning):
    """The observed information is singular or nearly so: standard errors are unreliable."""


class BoundaryWarning(UserWarning):
    """An estimate sits on the boundary of the parameter box: Wald intervals do not apply there."""


class OutlierWarning(UserWarning):
    """A few observations are so far from every expert that they dominate the fit."""


class LabelSwitchingWarning(UserWarning):
    """Posterior draws had exchangeable prompts in another order than the reference; they were relabelled."""


class ScaleWarning(UserWarning):
    """A frozen model's given scale is far from what its residuals on the data say (a standard deviation
    given for a variance, or data in other units)."""


class DegenerateWarning(UserWarning):
    """A prompt ends at the variance floor or explains a few rows: a spike of the likelihood, not an estimate."""
