"""Where each parameter lives in the flat vector the optimisers work on.

A parameter has a shape: ``()`` (a scalar such as ``tau``), ``(d,)`` (``beta``, ``eta`` of one prompt),
``(K,)`` or ``(K, d)`` (with a leading prompt axis).  Some of its entries may be set by the model rather
than estimated (MODEL.md section 8): *fixed* entries (the reference prompt's gate without a frozen
expert, ``b`` of a prompt without an intercept) keep a constant value, and the *remainder* entry of a
constant gate without a frozen expert is one minus the others.  The flat vector ``theta`` holds the
estimated entries only, name by name, row-major within a name; the full parameters are the affine map
``offset + J theta``, which :meth:`Layout.jacobian` gives for the delta method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from bayescmoe.exceptions import SpecError

__all__ = ["Layout"]


def _shape(value: Any) -> tuple[int, ...]:
    """An entry's shape: an int is the old notation (0 for a scalar, L for a vector of L)."""
    if isinstance(value, (int, np.integer)):
        return () if value == 0 else (int(value),)
    return tuple(int(v) for v in value)


@dataclass(frozen=True)
class Layout:
    """The parameters' names and shapes, which entries are estimated, and the flat vector of those.

    Parameters
    ----------
    entries : tuple of (name, shape)
        Shapes as tuples; an int ``L`` means ``(L,)`` and ``0`` a scalar.
    fixed : tuple of (name, mask, values)
        Per name, the flat mask of entries the model fixes and their values (flat, full length).
    remainder : tuple of str
        Names whose first entry is one minus the sum of the others (a constant gate without a frozen
        expert); that entry is not estimated.

    >>> lay = Layout((("beta", 2), ("tau", 0), ("nu", 0)))
    >>> lay.size, lay.names
    (4, ('beta', 'tau', 'nu'))
    >>> lay.unpack(np.array([1.0, 2.0, 3.0, 4.0]))["tau"]
    3.0
    >>> moe = Layout((("tau", (2,)), ("lam", (3,))), fixed=(("tau", (True, False), (0.0, 0.0)),), remainder=("lam",))
    >>> moe.size, moe.unpack(np.array([0.5, 0.2, 0.3]))["lam"].tolist()
    (3, [0.5, 0.2, 0.3])
    """

    entries: tuple[tuple[str, Any], ...]
    fixed: tuple[tuple[str, tuple[bool, ...], tuple[float, ...]], ...] = ()
    remainder: tuple[str, ...] = field(default=())

    # -- structure ------------------------------------------------------------------------
    @cached_property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: _shape(shape) for name, shape in self.entries}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.entries)

    @cached_property
    def _masks(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per name: the flat mask of estimated entries and the flat values of the others."""
        fixed = {name: (np.asarray(mask, bool), np.asarray(values, float)) for name, mask, values in self.fixed}
        out = {}
        for name, shape in self.shapes.items():
            count = int(np.prod(shape, dtype=int))
            is_fixed, values = fixed.get(name, (np.zeros(count, bool), np.zeros(count)))
            estimated = ~is_fixed
            if name in self.remainder:
                estimated = estimated.copy()
                estimated[0] = False
            out[name] = (estimated, values)
        return out

    def estimated(self, name: str) -> np.ndarray:
        """The flat mask of ``name``'s entries that are estimated."""
        return self._masks[name][0]

    @cached_property
    def slices(self) -> dict[str, slice]:
        """Per name, where its estimated entries sit in ``theta`` (empty if it has none)."""
        out, start = {}, 0
        for name in self.names:
            stop = start + int(self._masks[name][0].sum())
            out[name] = slice(start, stop)
            start = stop
        return out

    @property
    def size(self) -> int:
        """Number of estimated entries (the length of ``theta``)."""
        return sum(int(mask.sum()) for mask, _ in self._masks.values())

    @property
    def full_size(self) -> int:
        return sum(mask.size for mask, _ in self._masks.values())

    # -- values ---------------------------------------------------------------------------
    def pack(self, params: Mapping[str, Any]) -> np.ndarray:
        """The estimated entries of a parameter dict, as a flat vector; raises on missing names or wrong shapes."""
        vec = np.empty(self.size)
        for name, sl in self.slices.items():
            if name not in params:
                raise SpecError(f"parameter {name!r} is missing; expected {', '.join(self.names)}")
            shape = self.shapes[name]
            value = np.asarray(params[name], dtype=float)
            count = int(np.prod(shape, dtype=int))
            if value.size != count:
                raise SpecError(f"parameter {name!r} has {value.size} values; expected {count}")
            if len(shape) == 2 and value.shape != shape:
                raise SpecError(f"parameter {name!r} has shape {value.shape}; expected {shape} (one row per prompt)")
            vec[sl] = value.reshape(-1)[self._masks[name][0]]
        return vec

    def unpack(self, vec: np.ndarray, fill: float | None = None) -> dict[str, Any]:
        """The full parameters from ``theta``: arrays of their shapes, scalars as floats.

        With ``fill`` (say NaN), the entries that are not estimated get it: for unpacking a vector that
        is not a parameter, such as standard errors.
        """
        vec = np.asarray(vec, dtype=float)
        out: dict[str, Any] = {}
        for name, sl in self.slices.items():
            estimated, values = self._masks[name]
            flat = values.copy() if fill is None else np.full(values.size, fill)
            flat[estimated] = vec[sl]
            if name in self.remainder and fill is None:
                flat[0] = 1.0 - flat[1:].sum()
            shape = self.shapes[name]
            out[name] = float(flat[0]) if shape == () else flat.reshape(shape)
        return out

    def jacobian(self) -> tuple[np.ndarray, np.ndarray]:
        """``(offset, J)`` with the full flat parameters ``offset + J theta`` (names in order, row-major)."""
        offset = np.concatenate([self._masks[name][1] for name in self.names]) if self.names else np.zeros(0)
        J = np.zeros((self.full_size, self.size))
        row = 0
        for name, sl in self.slices.items():
            estimated, _ = self._masks[name]
            rows = row + np.flatnonzero(estimated)
            J[rows, np.arange(sl.start, sl.stop)] = 1.0
            if name in self.remainder:
                offset[row] = 1.0
                J[row, sl] = -1.0
            row += estimated.size
        return offset, J

    def full_variances(self, cov: np.ndarray) -> dict[str, Any]:
        """Variances of every entry from the covariance of ``theta`` (delta method; NaN for fixed entries)."""
        _, J = self.jacobian()
        var = np.zeros(self.full_size)
        for i, row in enumerate(J):  # only the entries each one depends on (NaN elsewhere must not spread)
            used = np.flatnonzero(row)
            var[i] = row[used] @ cov[np.ix_(used, used)] @ row[used]
        row, out = 0, {}
        for name in self.names:
            estimated, _ = self._masks[name]
            chunk = var[row : row + estimated.size].copy()
            determined = estimated.copy()
            if name in self.remainder:
                determined[0] = True
            chunk[~determined] = np.nan
            shape = self.shapes[name]
            out[name] = float(chunk[0]) if shape == () else chunk.reshape(shape)
            row += estimated.size
        return out

    def full_labels(self, covariates: Sequence[str], prompts: Sequence[str] | None = None) -> dict[str, list[str]]:
        """Per name, one label per entry: ``beta[x1]``, ``tau``; with ``prompts`` (parameters with a leading
        prompt axis) ``beta[p2, x1]``, ``nu[p1]``."""
        out = {}
        for name in self.names:
            shape = self.shapes[name]
            if shape == ():
                out[name] = [name]
            elif len(shape) == 1:
                out[name] = [f"{name}[{a}]" for a in (covariates if prompts is None else prompts)]
            else:
                out[name] = [f"{name}[{p}, {c}]" for p in prompts for c in covariates]
        return out

    def labels(self, covariates: Sequence[str], prompts: Sequence[str] | None = None) -> tuple[str, ...]:
        """One label per entry of ``theta`` (see :meth:`full_labels`)."""
        full = self.full_labels(covariates, prompts)
        return tuple(label for name in self.names for label, keep in zip(full[name], self._masks[name][0]) if keep)
