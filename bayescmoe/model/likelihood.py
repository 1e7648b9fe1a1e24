"""The likelihood of one dataset: :class:`Likelihood` (value, gradient and Hessian of the log-likelihood
by channels, over row chunks) and :func:`loglik`, built on the compiled kernels of :mod:`bayescmoe.model.kernel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from bayescmoe.exceptions import FitError
from bayescmoe.model.data import check_data, check_f0
from bayescmoe.model.kernel import _LOCK, _derivative_kernel, _value_kernel, pretrained_logp, structure
from bayescmoe.model.spec import Spec, load_spec

__all__ = ["loglik"]


# -- the likelihood of one dataset -------------------------------------------------------------------


@dataclass(frozen=True)
class _Channel:
    """One channel: where its parameters sit in theta, and the design columns it multiplies (None: none)."""

    index: np.ndarray
    cols: slice | None  # a range of D's columns (a view: the same BLAS calls as before channels existed)


def channels(spec: Spec) -> list[_Channel]:
    """The channels of ``spec`` in kernel order (z of the gated prompts, u, v), with their theta indices."""
    lay, d, s = spec.layout, spec.dim, structure(spec)
    position = {}
    for name in lay.names:  # theta index of every estimated entry, -1 elsewhere
        estimated = lay.estimated(name)
        idx = np.full(estimated.size, -1)
        idx[estimated] = np.arange(lay.slices[name].start, lay.slices[name].stop)
        position[name] = idx.reshape(-1, estimated.size // spec.K) if spec.multi else idx.reshape(1, -1)
    all_cols, x_cols = slice(0, d + 1), slice(0, d)
    out = []
    for k in s.gated:
        if spec.gating == "softmax":
            out.append(_Channel(np.r_[position["beta"][k], position["tau"][k]], all_cols))
        else:
            out.append(_Channel(position["lam"][k], slice(d, d + 1)))  # the column of ones
    for k, prompt in enumerate(spec.prompts):
        index = np.r_[position["eta"][k], position["b"][k]] if prompt.intercept else position["eta"][k]
        out.append(_Channel(index, all_cols if prompt.intercept else x_cols))
    out += [_Channel(position["nu"][k], None) for k in range(spec.K)]
    return out


#: Bytes of kernel output per chunk of rows in a streamed pass (:class:`Likelihood`): about the L2 cache of a core (1
#: MiB on the benchmark machine), so that a chunk's derivative vectors are still in cache when the gradient and
#: Hessian take them up.  Measured at n = 1e6 (benchmarks/RESULTS.md, "Streamed likelihood"): K = 1 passes take
#: 179 ms at 8,192 rows a chunk, 220 ms at 32,768, 435 ms at 65,536 and 296 ms in one chunk of all rows.
CHUNK_BYTES = 2**20
#: Fewest rows per chunk: below this, OpenMP does not split a kernel's loop over threads
#: (:data:`bayescmoe.model.kernel.OPENMP_MINSIZE`).
CHUNK_MIN = 4096


class Likelihood:
    """The log-likelihood of one dataset under one spec, as a function of the flat parameters.

    Parameters
    ----------
    spec : Spec
    X : ndarray, shape (n, d)
    y : ndarray, shape (n,)
        Checked data (see :func:`bayescmoe.model.data.check_data`).
    f0_mean, f0_scale : ndarray, optional
        The frozen expert's per-observation mean and scale, for a spec that takes them from the data.
    chunk : int, optional
        Rows per chunk of a pass; default: about as many as keep the kernel's outputs within :data:`CHUNK_BYTES`
        (a power of two, at least :data:`CHUNK_MIN`), evened out over the chunks (n = 1e4 is one chunk, not a full
        one and a fifth: a chunk costs about 0.2 ms of calls, measured).

    Notes
    -----
    ``theta`` is the flat vector of ``spec.layout`` (its estimated entries).  Evaluations return the
    *total* log-likelihood; estimators minimise its negative.

    Every pass is **streamed** over chunks of rows: the kernel runs on one chunk and its value, gradient and
    Hessian terms are added up before the next, so that a pass holds the data and one chunk's derivatives,
    never a vector per row and derivative.  On data of several chunks :meth:`value` computes all three (the line
    search's accepted point is the next Newton iterate) and keeps the last, with each row's log-likelihood (one
    vector), so that :meth:`value_grad_hess` and :meth:`loglik_rows` at that point cost nothing; on data of one
    chunk it keeps the kernel's outputs instead, and the matrix products wait for :meth:`value_grad_hess`.  The
    per-row methods (:meth:`loglik_rows`, :meth:`scores`, :meth:`pointwise`) return one value per row, computed
    chunk by chunk.
    """

    def __init__(self, spec: Spec, X: np.ndarray, y: np.ndarray, f0_mean=None, f0_scale=None, chunk=None):
        self.spec, self.X, self.y = spec, X, y
        self._f0 = (f0_mean, f0_scale)
        n, d = X.shape
        self.logf0 = pretrained_logp(spec, X, y, f0_mean, f0_scale)
        self._structure = structure(spec)
        self._channels = channels(spec)
        self._data = [y, self.logf0 if self.logf0 is not None else np.zeros(n)]
        with _LOCK:
            self._deriv = _derivative_kernel(self._structure)
        C = len(self._channels)
        if chunk is None:  # rows that fill CHUNK_BYTES, then spread evenly: no ragged last chunk
            rows = CHUNK_BYTES // (8 * (1 + C + C * (C + 1) // 2))
            rows = max(CHUNK_MIN, 1 << (max(rows, 1).bit_length() - 1))
            chunk = -(-n // max(1, round(n / rows)))
        self.chunk = max(1, int(chunk))
        # the design [X, 1] of one chunk at a time (the data are not copied whole), and which rows it holds
        self._design_cols = np.empty((d + 1, min(n, self.chunk)))  # its transpose, row by row (contiguous)
        self._design_cols[d] = 1.0
        self._held: tuple[int, int] | None = None
        self._last: tuple[np.ndarray, tuple[float, np.ndarray, np.ndarray], np.ndarray] | None = None
        self._kept: tuple[np.ndarray, list[np.ndarray]] | None = None  # data of one chunk: its last kernel pass
        self._tiled: dict[int, list[np.ndarray]] = {}
        self._buf = np.empty((d + 1) * max(self._pairs_with_design, 1) * min(n, self.chunk))

    def __reduce__(self):
        """Pickled as its data and spec (the compiled kernels are looked up again where it is unpickled): so that
        a Dask worker can receive a partition's likelihood from another."""
        return (Likelihood, (self.spec, self.X, self.y, *self._f0, self.chunk))

    @property
    def n(self) -> int:
        return len(self.y)

    def logf0_sum(self) -> float:
        """The frozen expert's total log-likelihood (NaN without a frozen expert)."""
        return float(self.logf0.sum()) if self.logf0 is not None else float("nan")

    def _chunks(self):
        return ((start, min(self.n, start + self.chunk)) for start in range(0, self.n, self.chunk))

    def _design(self, start: int, stop: int) -> np.ndarray:
        """The design ``[X, 1]`` of rows ``start:stop`` (one chunk), in a buffer reused from chunk to chunk (filled
        once when the data are one chunk): a column-major view, so that its transpose (a covariate per row, the
        rows contiguous) is weighted and multiplied along contiguous rows."""
        if self._held != (start, stop):
            self._design_cols[:-1, : stop - start] = self.X[start:stop].T
            self._held = (start, stop)
        return self._design_cols[:, : stop - start].T

    @cached_property
    def D(self) -> np.ndarray:
        """The whole design ``[X, 1]`` (n, d + 1), materialised on first use: for EM's weighted least squares and
        the multistart's screening of many parameter vectors at once (on a subsample); a pass never needs it."""
        return np.hstack([self.X, np.ones((self.n, 1))])

    @cached_property
    def _pairs(self) -> list[tuple[int, int]]:
        """The (i, j), i <= j, channel pairs in the kernel's output order."""
        C = len(self._channels)
        return [(i, j) for i in range(C) for j in range(i, C)]

    @cached_property
    def _pairs_with_design(self) -> int:
        ch = self._channels
        return sum(ch[i].cols is not None and ch[j].cols is not None for i, j in self._pairs)

    def _inputs(self, theta: np.ndarray, start: int, stop: int) -> list[np.ndarray]:
        """The channels' values on rows ``start:stop``, then the data the kernel takes (y, log f0)."""
        D, out = self._design(start, stop), []
        for ch in self._channels:
            if ch.cols is None:
                out.append(np.full(stop - start, theta[ch.index[0]]))
            else:
                out.append(D[:, ch.cols] @ theta[ch.index])
        return out + [v[start:stop] for v in self._data]

    def pointwise(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each observation's log-likelihood (n,) and the prompts' responsibilities: (n,) for a one-prompt
        spec written with ``[prompt]``, else (n, K)."""
        with _LOCK:
            fn = _value_kernel(self._structure)
        point, resp = np.empty(self.n), None
        for start, stop in self._chunks():
            first, *rest = fn(*self._inputs(theta, start, stop))
            point[start:stop] = first
            resp = np.empty((self.n, len(rest))) if resp is None else resp
            resp[start:stop] = np.column_stack(rest)
        return point, (resp[:, 0] if not self.spec.multi else resp)

    def loglik_rows(self, theta: np.ndarray) -> np.ndarray:
        """Each observation's log-likelihood (n,): kept from the last pass when ``theta`` is its point."""
        if self._last is not None and np.array_equal(self._last[0], theta):
            return self._last[2].copy()
        out = np.empty(self.n)
        for start, stop in self._chunks():  # the derivative kernel, compiled for every fit (the value kernel is not)
            out[start:stop] = self._kernel(theta, start, stop)[0]
        return out

    def value(self, theta: np.ndarray) -> float:
        """The total log-likelihood.  Data of several chunks: its gradient and Hessian are computed in the same pass
        and kept; data of one chunk: the kernel's outputs are kept, and the gradient's and Hessian's matrix products
        wait until they are asked for (a rejected line-search trial never pays them)."""
        if self.n <= self.chunk:
            return float(self._kernel(theta, 0, self.n)[0].sum())
        return self.value_grad_hess(theta)[0]

    def _kernel(self, theta: np.ndarray, start: int, stop: int) -> list[np.ndarray]:
        """The derivative kernel's outputs on rows ``start:stop``; kept (and reused) when they are all the rows."""
        if stop - start < self.n:
            return self._deriv(*self._inputs(theta, start, stop))
        if self._kept is None or not np.array_equal(self._kept[0], theta):
            self._kept = (np.array(theta, dtype=float), self._deriv(*self._inputs(theta, start, stop)))
        return self._kept[1]

    def scores(self, theta: np.ndarray) -> np.ndarray:
        """Each observation's score (gradient of its log-likelihood), shape (n, p)."""
        out = np.empty((self.n, self.spec.n_params))
        for start, stop in self._chunks():
            first = self._kernel(theta, start, stop)[1 : 1 + len(self._channels)]
            D = self._design(start, stop)
            for ch, L in zip(self._channels, first):
                out[start:stop, ch.index] = L[:, None] if ch.cols is None else D[:, ch.cols] * L[:, None]
        return out

    def _weighted_grams(self, weights, start: int, stop: int) -> np.ndarray:
        """``D' diag(w) D`` on rows ``start:stop`` for each ``w`` in ``weights`` (the chunk's), stacked: shape
        (len(weights) * k, k).  ``D'`` is weighted row by row (contiguous rows of the chunk) into one preallocated
        buffer ``[D' w_1; D' w_2; ...]`` and multiplied by ``D`` in a single BLAS call (fresh n-by-k temporaries
        cost more than the product).  Measured at n = 1e4 in one chunk: 400 us, against 730 us for a broadcast
        multiply of a row-major design (whose inner loop runs over the k columns)."""
        k, m = self.X.shape[1] + 1, stop - start
        D = self._design(start, stop)
        buf = self._buf[: len(weights) * k * m].reshape(len(weights) * k, m)
        for j, w in enumerate(weights):
            np.multiply(D.T, w, out=buf[j * k : (j + 1) * k])
        return buf @ D

    @cached_property
    def _plan(self):
        """Where each derivative the kernel returns lands in the gradient and the Hessian, computed once: the
        channels with a design (their first derivatives and mixed pairs go through one BLAS product ``V``), the
        pairs whose block is a weighted Gram matrix ``G``, and flat index arrays that scatter ``V`` and ``G``
        into the gradient and the Hessian in one fancy-indexing step each."""
        chans, k = self._channels, self.X.shape[1] + 1
        cols = [None if ch.cols is None else np.arange(k)[ch.cols] for ch in chans]
        designed = [i for i in range(len(chans)) if cols[i] is not None]
        mixed = [(p, i, j) for p, (i, j) in enumerate(self._pairs) if (cols[i] is None) != (cols[j] is None)]
        grams = [(p, i, j) for p, (i, j) in enumerate(self._pairs) if cols[i] is not None and cols[j] is not None]
        scalars = [(p, i, j) for p, (i, j) in enumerate(self._pairs) if cols[i] is None and cols[j] is None]
        grad_v = (np.concatenate([chans[i].index for i in designed]).astype(int) if designed else np.zeros(0, int),
                  np.concatenate([cols[i] for i in designed]) if designed else np.zeros(0, int),
                  np.concatenate([np.full(len(cols[i]), c) for c, i in enumerate(designed)]) if designed
                  else np.zeros(0, int))  # fmt: skip
        grad_s = [(chans[i].index, i) for i in range(len(chans)) if cols[i] is None]
        g_src, g_dst = [[], []], [[], []]
        for m, (_, i, j) in enumerate(grams):
            r, c = np.meshgrid(cols[i], cols[j], indexing="ij")
            a, b = np.meshgrid(chans[i].index, chans[j].index, indexing="ij")
            g_src[0].append((m * k + r).ravel()), g_src[1].append(c.ravel())
            g_dst[0].append(a.ravel()), g_dst[1].append(b.ravel())
        v_src, v_dst = [[], []], [[], []]
        for m, (_, i, j) in enumerate(mixed):
            a, b = (i, j) if cols[i] is not None else (j, i)
            v_src[0].append(cols[a]), v_src[1].append(np.full(len(cols[a]), len(designed) + m))
            v_dst[0].append(chans[a].index), v_dst[1].append(np.full(len(cols[a]), chans[b].index[0]))
        cat = lambda parts: np.concatenate(parts).astype(int) if parts else np.zeros(0, int)  # noqa: E731
        return {
            "designed": designed, "mixed": [p for p, _, _ in mixed], "grams": [p for p, _, _ in grams],
            "scalars": [(p, chans[i].index[0], chans[j].index[0]) for p, i, j in scalars], "grad_v": grad_v,
            "grad_s": grad_s, "g_src": tuple(cat(x) for x in g_src), "g_dst": tuple(cat(x) for x in g_dst),
            "v_src": tuple(cat(x) for x in v_src), "v_dst": tuple(cat(x) for x in v_dst),
        }  # fmt: skip

    def value_grad_hess(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """The total log-likelihood, its gradient (p,) and its exact Hessian (p, p), streamed over the chunks;
        the last point's are kept (class docstring)."""
        if self._last is not None and np.array_equal(self._last[0], theta):
            value, grad, hess = self._last[1]
            return value, grad.copy(), hess.copy()
        C, plan, k = len(self._channels), self._plan, self.X.shape[1] + 1
        value, per_row = 0.0, np.empty(self.n)
        V = np.zeros((k, len(plan["designed"]) + len(plan["mixed"])))
        G = np.zeros((len(plan["grams"]) * k, k))
        sums_first = np.zeros(C)
        sums_second = np.zeros(len(self._pairs))
        for start, stop in self._chunks():
            out = self._kernel(theta, start, stop)
            first, second = out[1 : 1 + C], out[1 + C :]
            value += out[0].sum()
            per_row[start:stop] = out[0]
            # every vector a design multiplies, in one BLAS call: first derivatives, then mixed pairs
            columns = [first[i] for i in plan["designed"]] + [second[p] for p in plan["mixed"]]
            if columns:
                V += self._design(start, stop).T @ np.column_stack(columns)
            for _, i in plan["grad_s"]:
                sums_first[i] += first[i].sum()
            for p, _, _ in plan["scalars"]:
                sums_second[p] += second[p].sum()
            if plan["grams"]:
                G += self._weighted_grams([second[p] for p in plan["grams"]], start, stop)
        p_all = self.spec.n_params
        grad = np.empty(p_all)
        hess = np.empty((p_all, p_all))
        index, rows, cols = plan["grad_v"]
        grad[index] = V[rows, cols]
        for index, i in plan["grad_s"]:
            grad[index] = sums_first[i]
        if plan["grams"]:
            block = G[plan["g_src"]]
            hess[plan["g_dst"]] = block
            hess[plan["g_dst"][::-1]] = block
        if plan["mixed"]:
            column = V[plan["v_src"]]
            hess[plan["v_dst"]] = column
            hess[plan["v_dst"][::-1]] = column
        for p, a, b in plan["scalars"]:
            hess[a, b] = hess[b, a] = sums_second[p]
        result = (float(value), grad, 0.5 * (hess + hess.T))  # BLAS leaves X'WX asymmetric by rounding
        self._last = (np.array(theta, dtype=float), result, per_row)
        return result[0], grad.copy(), result[2].copy()

    # -- many parameter vectors at once (the multistart's screening) ---------------------------------------
    def _many(self, Theta: np.ndarray, fn) -> list[np.ndarray]:
        """``fn`` on the channels of every row of ``Theta`` (S, p) in one call: the kernel is elementwise, so S
        parameter vectors are S copies of the data side by side (vectors of S n values)."""
        S = len(Theta)
        values = []
        for ch in self._channels:
            if ch.cols is None:
                values.append(np.repeat(Theta[:, ch.index[0]], self.n))
            else:
                values.append((self.D[:, ch.cols] @ Theta[:, ch.index].T).T.reshape(-1))
        tiled = self._tiled.get(S)
        if tiled is None:
            tiled = self._tiled[S] = [np.tile(v, S) for v in self._data]
        return [out.reshape(S, self.n) for out in fn(*values, *tiled)]

    def values(self, Theta: np.ndarray) -> np.ndarray:
        """The total log-likelihood at each row of ``Theta`` (S, p): (S,)."""
        with _LOCK:
            fn = _value_kernel(self._structure)  # the value alone: a third of the derivatives' pass
        return self._many(Theta, fn)[0].sum(axis=1)

    def value_grad_hess_many(self, Theta: np.ndarray):
        """:meth:`value_grad_hess` at each row of ``Theta`` (S, p): values (S,), gradients (S, p) and Hessians
        (S, p, p), from one kernel pass over S copies of the data."""
        out = self._many(Theta, self._deriv)
        C, plan, D = len(self._channels), self._plan, self.D
        first, second = out[1 : 1 + C], out[1 + C :]
        S, p_all = len(Theta), self.spec.n_params
        grad = np.empty((S, p_all))
        hess = np.empty((S, p_all, p_all))
        designed = [first[i] for i in plan["designed"]] + [second[p] for p in plan["mixed"]]
        V = np.einsum("snc,nk->skc", np.stack(designed, axis=2), D) if designed else None  # (S, k, columns)
        index, rows, columns = plan["grad_v"]
        grad[:, index] = V[:, rows, columns]
        for index, i in plan["grad_s"]:
            grad[:, index] = first[i].sum(axis=1)[:, None]
        k = D.shape[1]
        if plan["grams"]:
            W = np.stack([second[p] for p in plan["grams"]], axis=1)  # (S, M, n)
            G = np.einsum("smn,na,nb->smab", W, D, D, optimize=True).reshape(S, -1, k)
            block = G[:, plan["g_src"][0], plan["g_src"][1]]
            hess[:, plan["g_dst"][0], plan["g_dst"][1]] = block
            hess[:, plan["g_dst"][1], plan["g_dst"][0]] = block
        if plan["mixed"]:
            column = V[:, plan["v_src"][0], plan["v_src"][1]]
            hess[:, plan["v_dst"][0], plan["v_dst"][1]] = column
            hess[:, plan["v_dst"][1], plan["v_dst"][0]] = column
        for p, a, b in plan["scalars"]:
            hess[:, a, b] = hess[:, b, a] = second[p].sum(axis=1)
        return out[0].sum(axis=1), grad, 0.5 * (hess + hess.transpose(0, 2, 1))


def loglik(spec: Any, X: Any, y: Any, params: dict[str, Any], *, f0_mean: Any = None, f0_scale: Any = None) -> float:
    """The total log-likelihood of ``params`` on the data ``(X, y)`` (MODEL.md section 7).

    Parameters
    ----------
    spec : Spec or str
    X : array_like, shape (n, d)
    y : array_like, shape (n,)
    params : dict
        Keyed by the names of section 1 (``beta, tau, eta, [b], nu`` or ``lam, eta, [b], nu``; with a
        leading prompt axis for a spec written with ``[[prompts]]``).
    f0_mean, f0_scale : array_like or fitted model, optional
        The frozen expert's per-observation mean (an array, or any object with ``predict(X)``) and scale,
        for a spec whose ``[pretrained]`` says ``mean = "data"`` / ``scale = "data"``.

    Examples
    --------
    >>> import bayescmoe as bc
    >>> X, y, truth = bc.simulate("softmax_distinguishable", n=200, seed=0)
    >>> round(bc.loglik("softmax_distinguishable", X, y, truth), 6) < 0
    True
    """
    spec = load_spec(spec)
    X, y = check_data(spec, X, y)
    f0_mean, f0_scale = check_f0(spec, X, f0_mean, f0_scale)
    theta = spec.layout.pack(params)
    _check_in_domain(spec, theta)
    return Likelihood(spec, X, y, f0_mean, f0_scale).value(theta)


def _check_in_domain(spec: Spec, theta: np.ndarray) -> None:
    if not np.all(np.isfinite(theta)):
        raise FitError("parameters must be finite")
    p = spec.layout.unpack(theta)
    if np.any(np.asarray(p["nu"]) <= 0):
        raise FitError(f"nu is a variance and must be positive, got {p['nu']}")
    if "lam" in p:
        lam = np.atleast_1d(p["lam"])
        rest = 1.0 - lam.sum() if spec.has_pretrained else lam[0]
        if np.any(lam <= 0) or np.any(lam >= 1) or rest <= 0:
            raise FitError(f"lam must lie in (0, 1) with a positive weight left for the reference, got {p['lam']}")
