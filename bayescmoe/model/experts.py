"""The registry of expert mean functions ``phi`` (MODEL.md section 1).

An expert mean is ``h(x; eta, b) = phi(eta . x + b)``.  Each entry carries the
same function twice: as a pytensor expression (for the model, its gradients and
the compiled estimators) and as a numpy function (for the simulator, which must
not pay a compilation).  The test suite checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytensor.tensor as pt
from scipy import special

from bayescmoe.exceptions import SpecError

__all__ = ["Expert", "EXPERTS", "get_expert"]


@dataclass(frozen=True)
class Expert:
    """One mean function ``phi``.

    Attributes
    ----------
    name : str
        The registry key (``"linear"``, ``"tanh"``, ...).
    formula : str
        ``phi(z)`` in words, for help texts.
    tensor : callable
        ``phi`` on pytensor variables.
    numpy : callable
        ``phi`` on numpy arrays.
    derivative : callable
        ``phi'`` on numpy arrays (the EM's M-step uses it; tests check it against
        finite differences).
    """

    name: str
    formula: str
    tensor: Callable
    numpy: Callable
    derivative: Callable

    def __call__(self, z):
        """Apply ``phi`` to a pytensor variable or a numpy array."""
        if isinstance(z, pt.TensorVariable):
            return self.tensor(z)
        return self.numpy(np.asarray(z, dtype=float))


def _gelu_tensor(z):
    return z * 0.5 * (1.0 + pt.erf(z / np.sqrt(2.0)))


def _gelu_numpy(z):
    return z * special.ndtr(z)


def _gelu_derivative(z):
    return special.ndtr(z) + z * np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)


def _sigmoid_derivative(z):
    s = special.expit(z)
    return s * (1.0 - s)


EXPERTS: dict[str, Expert] = {
    e.name: e
    for e in (
        Expert("linear", "z", lambda z: z, lambda z: z, np.ones_like),
        Expert("tanh", "tanh(z)", pt.tanh, np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
        Expert("sigmoid", "1 / (1 + exp(-z))", pt.sigmoid, special.expit, _sigmoid_derivative),
        Expert("gelu", "z * Phi(z), Phi the standard normal CDF", _gelu_tensor, _gelu_numpy, _gelu_derivative),
        Expert(
            "relu",
            "max(0, z)",
            lambda z: pt.maximum(z, 0.0),
            lambda z: np.maximum(z, 0.0),
            lambda z: (z > 0).astype(float),
        ),
    )
}


def get_expert(name: str) -> Expert:
    """Return the expert called ``name``.

    >>> get_expert("tanh").formula
    'tanh(z)'
    """
    try:
        return EXPERTS[name]
    except KeyError:
        raise SpecError(f"unknown expert {name!r}; choose one of {', '.join(sorted(EXPERTS))}") from None
