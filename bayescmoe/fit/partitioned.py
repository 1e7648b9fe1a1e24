"""One fit on data held in partitions (Dask arrays or dataframes), possibly across a cluster.

A Newton step needs the log-likelihood's value, gradient and Hessian, and each is a sum over rows: so each
partition's sums are computed where the partition lives, by its own streamed :class:`Likelihood` (built once,
on the worker, and kept there), and the client adds them up (exactly: the sum of the partitions' sums).  The
starting point comes from an in-memory fit on a random sample of rows (the whole multistart machinery, its
screening and its checks for spikes, on ``sample`` rows); the projected Newton method of
:mod:`bayescmoe.fit.optimize` then runs on every row from there.

The checks that read every row (spikes, degenerate prompts, dominating rows) run on the sample, not on all rows:
their warnings, kept in the result, name rows of the sample.
"""

from __future__ import annotations

import numpy as np

from bayescmoe.exceptions import FitError
from bayescmoe.fit.problem import Data, checked_data
from bayescmoe.model.likelihood import Likelihood
from bayescmoe.model.spec import Spec

__all__ = ["PartitionedLikelihood", "is_partitioned", "SAMPLE"]

#: Rows drawn (without replacement) for the in-memory fit that gives the partitioned fit its start.
SAMPLE = 50_000


def is_partitioned(X) -> bool:
    """Whether ``X`` is a Dask collection (array, dataframe or series)."""
    return hasattr(X, "__dask_graph__")


def _as_dask_array(v, name: str):
    """A Dask array of ``v`` (a Dask array, dataframe or series), with known chunk sizes, or None."""
    if v is None:
        return None
    if not is_partitioned(v):
        raise FitError(f"{name} must be a Dask collection like X (partitioned data are all partitioned), "
                       f"got {type(v).__name__}; wrap it with dask.array.from_array")  # fmt: skip
    if hasattr(v, "to_dask_array"):  # a dataframe or series
        v = v.to_dask_array(lengths=True)
    if any(np.isnan(c) for c in v.chunks[0]):
        v = v.compute_chunk_sizes()
    return v


def _partition(spec: Spec, X, y, f0_mean, f0_scale) -> Likelihood:
    """One partition's likelihood, built where the partition lives (its data checked there, as in memory)."""
    return checked_data(spec, X, y, f0_mean, f0_scale).likelihood(spec)


class PartitionedLikelihood:
    """The log-likelihood of partitioned data: :meth:`value_grad_hess` is the sum of the partitions'.

    Parameters
    ----------
    spec : Spec
    X : dask.array.Array or dask.dataframe.DataFrame, shape (n, d)
    y : dask.array.Array or dask.dataframe.Series, shape (n,)
    f0_mean, f0_scale : Dask collections, optional
        The frozen expert's per-observation mean and scale (a spec that takes them from the data).

    Each partition's :class:`Likelihood` is persisted (on the workers of the active ``distributed`` client, else
    in this process) and evaluated there; only parameter vectors travel to the workers and only a value, a
    gradient and a Hessian per partition come back.
    """

    def __init__(self, spec: Spec, X, y, f0_mean=None, f0_scale=None):
        import dask

        X, y = _as_dask_array(X, "X"), _as_dask_array(y, "y")
        if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
            raise FitError(f"X must be (n, d) and y (n,) with the same n, got X {X.shape} and y {y.shape}")
        if X.shape[1] != spec.dim:
            raise FitError(f"X has {X.shape[1]} columns but the spec {spec.name!r} has dim = {spec.dim}")
        X = X.rechunk({1: -1})
        rows = X.chunks[0]
        self.spec, self.n, self.rows = spec, int(X.shape[0]), rows
        self.X, self.y = X, y
        self.f0_mean, self.f0_scale = _as_dask_array(f0_mean, "f0_mean"), _as_dask_array(f0_scale, "f0_scale")
        parts = [v.rechunk((rows,) + v.chunks[1:]).to_delayed().ravel() if v is not None else [None] * len(rows)
                 for v in (y, self.f0_mean, self.f0_scale)]  # fmt: skip
        blocks = X.to_delayed().ravel()
        self._parts = dask.persist(*[dask.delayed(_partition)(spec, xb, yb, mb, sb)
                                     for xb, yb, mb, sb in zip(blocks, *parts)])  # fmt: skip
        self._last: tuple[np.ndarray, tuple[float, np.ndarray, np.ndarray]] | None = None

    @property
    def partitions(self) -> int:
        return len(self._parts)

    def value_grad_hess(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """The total log-likelihood, its gradient and its Hessian: each partition's, added up (the last kept)."""
        import dask

        if self._last is not None and np.array_equal(self._last[0], theta):
            value, grad, hess = self._last[1]
            return value, grad.copy(), hess.copy()
        theta = np.array(theta, dtype=float)
        done = dask.compute(*[dask.delayed(Likelihood.value_grad_hess)(part, theta) for part in self._parts])
        value = float(sum(v for v, _, _ in done))
        grad, hess = sum(g for _, g, _ in done), sum(h for _, _, h in done)
        self._last = (theta, (value, grad, hess))
        return value, grad.copy(), hess.copy()

    def value(self, theta: np.ndarray) -> float:
        """The total log-likelihood (a partition of several chunks computes its derivatives in the same pass)."""
        return self.value_grad_hess(theta)[0]

    def logf0_sum(self) -> float:
        import dask

        return float(sum(dask.compute(*[dask.delayed(Likelihood.logf0_sum)(part) for part in self._parts])))

    def sample(self, size: int, rng: np.random.Generator) -> Data:
        """``size`` rows drawn without replacement (all rows when there are fewer), as checked in-memory data."""
        index = np.sort(rng.choice(self.n, size=min(size, self.n), replace=False))
        take = lambda v: None if v is None else np.asarray(v[index].compute(), dtype=float)  # noqa: E731
        return checked_data(self.spec, take(self.X), take(self.y), take(self.f0_mean), take(self.f0_scale))
