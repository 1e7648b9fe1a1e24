"""The parts of a spec: the frozen expert, a prompt, the covariates' law, a schedule, and the defaults
(the MLE's box, the names of the losses).  Pure data; :mod:`bayescmoe.model.spec_parse` reads them from
TOML and :class:`bayescmoe.model.spec.Spec` holds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

__all__ = ["Pretrained", "Prompt", "Covariates", "Schedule", "DEFAULT_BOUNDS", "LOSSES"]

Gating = Literal["softmax", "constant"]
#: The box searched by the MLE when a spec's ``[bounds]`` leaves a parameter out.
DEFAULT_BOUNDS: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "beta": (-10.0, 10.0),
        "tau": (-10.0, 10.0),
        "eta": (-10.0, 10.0),
        "b": (-10.0, 10.0),
        "nu": (1e-3, 100.0),
        "lam": (1e-3, 0.999),
    }
)
#: The losses of MODEL.md section 3, by the names used in tables, stores and [paper] rates.
LOSSES = ("beta", "tau", "exp_tau", "lam", "eta", "b", "nu", "density")


@dataclass(frozen=True)
class Pretrained:
    """The frozen pre-trained expert ``f0(y | m0(x), s0)``: all known.

    ``m0(x) = phi0(eta0 . x + b0)`` (``expert``, ``eta``, ``intercept``), or, with ``expert = None``
    (``mean = "data"``), one value per observation given with the data: a real model's predictions.
    ``scale`` is one number, or ``None`` (``scale = "data"``): one value per observation.
    """

    family: str
    expert: str | None
    eta: tuple[float, ...] | None
    intercept: float = 0.0
    scale: float | None = 1.0
    df: float | None = None

    @property
    def mean_from_data(self) -> bool:
        return self.expert is None

    @property
    def scale_from_data(self) -> bool:
        return self.scale is None

    def to_dict(self) -> dict[str, Any]:
        if self.mean_from_data:
            out: dict[str, Any] = {"family": self.family, "mean": "data"}
        else:
            out = {"family": self.family, "expert": self.expert, "eta": list(self.eta), "intercept": self.intercept}
        out["scale"] = "data" if self.scale_from_data else self.scale
        return out | ({"df": self.df} if self.df is not None else {})


@dataclass(frozen=True)
class Prompt:
    """A trainable Gaussian prompt's mean function and whether it has an intercept ``b``."""

    expert: str
    intercept: bool = False


@dataclass(frozen=True)
class Covariates:
    """How :func:`bayescmoe.model.simulate` draws X: uniform on ``[low, high]^d`` or standard normal."""

    distribution: str = "uniform"
    low: float = -1.0
    high: float = 1.0


@dataclass(frozen=True)
class Schedule:
    """A true parameter of one prompt that moves with ``n``.

    ``merge``: ``eta*(n) = eta0 + c n^-kappa u`` or ``nu*(n) = s0 + c n^-kappa``;
    ``vanish``: ``lam*(n) = c n^-kappa`` (constant gating), or the softmax gate at x = 0,
    ``sigmoid(tau*(n)) = c n^-kappa`` (so that with ``beta* = 0`` it matches a constant ``lam*``).
    ``prompt`` is 1-based (MODEL.md section 8).
    """

    parameter: str
    form: str
    c: float
    kappa: float
    direction: tuple[float, ...] | None = None  # as written in the spec; see unit_direction
    prompt: int = 1

    @property
    def unit_direction(self) -> np.ndarray:
        """``u``: the direction normalised to unit length (``eta`` schedules only)."""
        u = np.array(self.direction)
        return u / np.linalg.norm(u)

    def to_dict(self, multi: bool) -> dict[str, Any]:
        out = {"parameter": self.parameter, "form": self.form, "c": self.c, "kappa": self.kappa}
        if self.direction is not None:
            out["direction"] = list(self.direction)
        return out | ({"prompt": self.prompt} if multi else {})
