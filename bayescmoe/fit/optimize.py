"""A projected Newton method for smooth minimisation over a box, with the exact Hessian.

The contaminated MoE has a few dozen parameters and a cheap exact Hessian
(:mod:`bayescmoe.model.kernel`), so each iteration solves the Newton system and
converges quadratically near an interior optimum.  Far from it the Hessian may be
indefinite: its eigenvalues are replaced by their absolute values, floored at a
small fraction of the largest (a "saddle-free" Newton step, which always points
downhill), and shortened in a trust region when it is too long to be believed.
Bounds are handled as in Bertsekas (1982), *Projected Newton methods for
optimization problems with simple constraints*: variables at a bound whose
gradient pushes outwards are held fixed, the step is taken in the others and
projected on the box, and accepted on Armijo's sufficient decrease.  Many starts
at once (:func:`newton_box_many`, for screening) take halved Newton steps.

Internal machinery of the estimators (not re-exported by ``bayescmoe``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import numpy as np

__all__ = ["Status", "OptimizeResult", "newton_box", "newton_box_many"]


class Status(Enum):
    """How an optimisation ended."""

    CONVERGED = "converged"
    MAX_ITER = "maximum number of iterations reached"
    LINE_SEARCH = "no step could decrease the objective"
    NOT_FINITE = "objective not finite at the start"


@dataclass(frozen=True)
class OptimizeResult:
    """Result of :func:`newton_box` (minimisation)."""

    x: np.ndarray
    fun: float
    grad: np.ndarray
    hess: np.ndarray
    status: Status
    n_iter: int
    n_fev: int

    @property
    def converged(self) -> bool:
        return self.status is Status.CONVERGED


def _newton_direction(g, H, free, floor):
    d = np.zeros_like(g)
    if free.any():
        w, V = np.linalg.eigh(H[np.ix_(free, free)])
        w = np.maximum(np.abs(w), max(floor * np.abs(w).max(), 1e-300))
        d[free] = -V @ ((V.T @ g[free]) / w)
    return d


#: A stationary point whose Hessian, scaled to a unit diagonal over the free variables, has an eigenvalue
#: below minus this is a saddle, not a minimum: the method leaves it along that eigenvector.
SADDLE = 1e-6


def _negative_curvature(H: np.ndarray, free: np.ndarray) -> np.ndarray | None:
    """The direction of most negative curvature over the free variables, if the point is a saddle (the scaled
    Hessian's smallest eigenvalue below ``-SADDLE``); else None.  Scaled to a unit diagonal, the decision does
    not depend on the parameters' units, and round-off (~1e-15) is far below the threshold."""
    if not free.any():
        return None
    block = H[np.ix_(free, free)]
    diag = np.diag(block)
    if np.any(diag <= 0):  # a non-positive diagonal entry is itself a direction of non-positive curvature
        i = int(np.argmin(diag))
        if diag[i] >= 0:
            return None
        out = np.zeros(H.shape[0])
        out[np.flatnonzero(free)[i]] = 1.0 / np.sqrt(-diag[i])
        return out
    root = 1.0 / np.sqrt(diag)
    w, V = np.linalg.eigh(block * root[:, None] * root[None, :])
    if w[0] >= -SADDLE:
        return None
    out = np.zeros(H.shape[0])
    out[free] = root * V[:, 0]  # a unit step in the scaled variables
    return out


def _descend(fun, x, f, d, lower, upper):
    """A point along ``x + t d`` (t = 1, 1/2, ... and growing while it pays, projected on the box) with a
    lower ``fun``; ``(None, f, evaluations)`` if none down to t = 2^-30."""
    best, best_f, n = None, f, 0
    step = 1.0
    while step > 2.0**-30:
        trial = np.clip(x + step * d, lower, upper)
        value = fun(trial)
        n += 1
        if np.isfinite(value) and value < best_f:
            best, best_f = trial, value
            break
        step *= 0.5
    return best, best_f, n


def _leave_saddle(fun_grad_hess, fun, x, f, g, H, free, lower, upper):
    """Where the Newton decrement is negligible: ``(None, evaluations)`` at a minimum, or at a flat saddle (the
    curvature is there but no step along it lowers f); else ``((x, f, g, H), evaluations)`` at a lower point along
    the direction of most negative curvature, taken its steepest way down (never uphill)."""
    d = _negative_curvature(H, free)
    if d is None:
        return None, 0
    d = -d if g @ d > 0 else d
    x_new, _, evaluations = _descend(fun, x, f, d, lower, upper)
    if x_new is None:
        return None, evaluations
    return (x_new, *fun_grad_hess(x_new)), evaluations + 1


class _Quadratic:
    """The saddle-free quadratic model ``g's + s'|H|s / 2`` on the free variables: ``|H|`` the free block of the
    Hessian with its eigenvalues in absolute value, floored at ``floor`` times the largest."""

    def __init__(self, g, H, free, floor):
        self.g, self.free = g, free
        self.w, self.V = np.ones(0), np.zeros((0, 0))
        if free.any():
            w, self.V = np.linalg.eigh(H[np.ix_(free, free)])
            self.w = np.maximum(np.abs(w), max(floor * np.abs(w).max(), 1e-300))
        self.coef = self.V.T @ g[free]

    def step(self, mu: float = 0.0) -> np.ndarray:
        """``-(|H| + mu I)^-1 g`` on the free variables (zero on the held ones); ``mu = 0``: the Newton step."""
        out = np.zeros_like(self.g)
        out[self.free] = -self.V @ (self.coef / (self.w + mu))
        return out

    def length(self, mu: float = 0.0) -> float:
        return float(np.sqrt(np.sum((self.coef / (self.w + mu)) ** 2)))

    def within(self, radius: float) -> tuple[np.ndarray, float]:
        """The Newton step if it is no longer than ``radius``, else the damped step with the least ``mu`` that
        brings it within (bisection: the length falls as mu grows); and its length."""
        if self.length() <= radius:
            return self.step(), self.length()
        low, high = 0.0, float(np.sqrt(self.coef @ self.coef)) / radius  # at high the length is below radius
        for _ in range(60):
            mid = 0.5 * (low + high)
            low, high = (mid, high) if self.length(mid) > radius else (low, mid)
        return self.step(high), self.length(high)

    def predicted(self, step: np.ndarray) -> float:
        """The decrease the model predicts for ``step``."""
        c = self.V.T @ step[self.free]
        return -(float(self.g @ step) + 0.5 * float(c @ (self.w * c)))


def _new_radius(radius, length, actual, predicted, resolvable):
    """The trust radius after an accepted step: a quarter of the step when the model predicted the decrease
    poorly (ratio below 1/4), twice the radius when it predicted it well (above 3/4) at the full radius; unchanged
    when the predicted decrease is below what floating point resolves in f (the ratio is then rounding, and
    shrinking on it would stall a walk along a flat valley)."""
    if predicted <= resolvable:
        return radius
    ratio = actual / predicted
    if ratio < 0.25:
        return length / 4.0
    if ratio > 0.75 and length >= 0.99 * radius:
        return 2.0 * radius
    return radius


def _armijo(fun, x, f, g, d, lower, upper):
    """The first of ``x + t d`` (t = 1, 1/2, ..., 1e-14, projected on the box) with Armijo's sufficient decrease;
    ``(None, evaluations)`` if none."""
    step, n = 1.0, 0
    while step > 1e-14:
        x_new = np.clip(x + step * d, lower, upper)
        f_new = fun(x_new)
        n += 1
        if np.isfinite(f_new) and f_new <= f + 1e-4 * float(g @ (x_new - x)):
            return x_new, n
        step *= 0.5
    return None, n


def _trust_step(fun, x, f, g, model, radius, lower, upper):
    """One step in the trust region: ``(x_new or None, radius, evaluations)``.  A refused trial (no Armijo
    decrease) shrinks the radius to a quarter of its length; an accepted one sets the radius by
    :func:`_new_radius`.  A step the radius cut short to a decrease f cannot resolve is no progress: then, or when
    no trial is accepted down to 1e-14 of the Newton step, the full Newton step is halved instead (along a flat
    valley, the direction of the walk), and the radius becomes the length of the step taken.  A gradient or
    Hessian that is not finite gives no step: ``(None, radius, 0)``."""
    newton, n = model.length(), 0
    if not np.isfinite(newton):  # NaN or inf in g or H: every trial length would be NaN, and the loop endless
        return None, radius, 0
    resolvable = 1e3 * np.finfo(float).eps * max(1.0, abs(f))
    while True:
        step, length = model.within(radius)
        x_new = np.clip(x + step, lower, upper)
        f_new = fun(x_new)
        n += 1
        if np.isfinite(f_new) and f_new <= f + 1e-4 * float(g @ (x_new - x)):
            break
        radius = length / 4.0
        if radius <= 1e-14 * newton:
            x_new = None
            break
    if x_new is not None:
        predicted = model.predicted(x_new - x)
        if length >= newton or predicted > resolvable:
            return x_new, _new_radius(radius, length, f - f_new, predicted, resolvable), n
    x_new, more = _armijo(fun, x, f, g, model.step(), lower, upper)
    if x_new is not None:  # the radius the refused trials left (down to 1e-14 of the step) would refuse the next
        radius = float(np.linalg.norm(x_new - x))
    return x_new, radius, n + more


def newton_box(
    fun_grad_hess: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]],
    fun: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    maxiter: int = 200,
    tol: float = 1e-13,
    atol: float = 0.0,
    eig_floor: float = 1e-10,
) -> OptimizeResult:
    """Minimise ``fun`` over the box ``[lower, upper]`` by projected Newton steps in a trust region.

    Each iteration takes the saddle-free Newton step on the free variables if it lies within the trust radius,
    else the least-damped step ``-(|H| + mu I)^-1 g`` that does (``mu`` by bisection), accepted on Armijo's
    sufficient decrease.  The radius is kept between iterations: a quarter of the step after a refused or poorly
    predicted one, doubled after a well-predicted full-length one, left alone when the predicted decrease is
    below what f resolves.  Halving the step instead (a line search) shortens every component alike, so a
    direction of near-zero curvature, along which the saddle-free step is enormous, costs many halvings and then
    steps that barely move the rest; when the trust region finds no resolvable decrease the Newton step is
    halved all the same (see :func:`_trust_step`).

    Parameters
    ----------
    fun_grad_hess : callable
        ``x -> (f, grad, Hessian)``.
    fun : callable
        ``x -> f``, used to try steps (cheaper than ``fun_grad_hess``).
    x0 : ndarray
        Start, inside the box.
    tol : float
        Convergence when the Newton decrement ``g' H^-1 g / 2`` over the free
        variables (the predicted decrease) falls below ``tol * max(1, |f|)``: the
        Karush-Kuhn-Tucker conditions of the box, measured relative to the objective's
        scale (a variable on a bound that the gradient pushes outwards is held there, so
        a box optimum converges like an interior one); or when no decrease can be found
        and the predicted one is below what floating point resolves in ``f``
        (``1e3 * eps * max(1, |f|)``).  The relative scale matters when one
        observation makes ``|f|`` huge (a response of 1e6 gives ``|f| ~ 1e6``): an
        absolute threshold then lies below the rounding of ``f``, and steps that
        change nothing would be accepted until ``maxiter``.
    atol : float
        Convergence also when the decrement is below ``atol`` at two successive iterations: along a flat valley
        (an unidentified direction, such as two identical prompts) the decrement falls only linearly, and the
        walk ends when what is left to gain is of the order of ``atol``.  Near a regular optimum it usually
        falls quadratically and the second of the two is at ``tol``'s precision, but a damped approach can end
        earlier, with ``f`` within about ``atol`` of its minimum.  0 (the default): only ``tol``.
    eig_floor : float
        Relative floor for the Hessian's eigenvalues.

    Examples
    --------
    >>> q = lambda x: (float((x - 3) @ (x - 3)), 2 * (x - 3), 2 * np.eye(2))
    >>> r = newton_box(q, lambda x: q(x)[0], np.zeros(2), np.full(2, -1.0), np.array([1.0, 5.0]))
    >>> r.x.round(12).tolist(), r.status.name
    ([1.0, 3.0], 'CONVERGED')
    """
    x = np.clip(np.asarray(x0, dtype=float), lower, upper)
    f, g, H = fun_grad_hess(x)
    n_fev = 1
    if not np.isfinite(f):
        return OptimizeResult(x, f, g, H, Status.NOT_FINITE, 0, n_fev)
    width = upper - lower
    radius, small_before = np.inf, False
    for it in range(1, maxiter + 1):
        eps = np.minimum(1e-10 * width, np.abs(x - np.clip(x - g, lower, upper)))
        held = ((x <= lower + eps) & (g > 0)) | ((x >= upper - eps) & (g < 0))
        model = _Quadratic(g, H, ~held, eig_floor)
        decrement = -float(g @ model.step()) / 2.0
        small, stalled = decrement <= atol, decrement <= atol and small_before
        small_before = small
        if decrement <= tol * max(1.0, abs(f)) or stalled:
            left, evaluations = _leave_saddle(fun_grad_hess, fun, x, f, g, H, ~held, lower, upper)
            n_fev += evaluations
            if left is None:
                return OptimizeResult(x, f, g, H, Status.CONVERGED, it - 1, n_fev)
            x, f, g, H = left
            small_before = False  # the walk from the saddle's way down needs two small decrements of its own
            continue
        x_new, radius, evaluations = _trust_step(fun, x, f, g, model, radius, lower, upper)
        n_fev += evaluations
        if x_new is None:
            # no decrease found: rounding, if the predicted decrease is below what f can resolve
            resolvable = 1e3 * np.finfo(float).eps * max(1.0, abs(f))
            status = Status.CONVERGED if decrement <= resolvable else Status.LINE_SEARCH
            return OptimizeResult(x, f, g, H, status, it, n_fev)
        x = x_new
        f, g, H = fun_grad_hess(x)
        n_fev += 1
    return OptimizeResult(x, f, g, H, Status.MAX_ITER, maxiter, n_fev)


def newton_box_many(
    fun_grad_hess: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
    fun: Callable[[np.ndarray], np.ndarray],
    X0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    iterations: int,
    tol: float = 1e-13,
    eig_floor: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray]:
    """Projected, saddle-free Newton steps from every row of ``X0`` (S, p) at once, for a fixed number of
    ``iterations``: :func:`newton_box`'s direction, shortened by halving (Armijo backtracking) instead of a trust
    region and without its saddle escape or ``atol``, with the objective evaluated for all starts in one call
    (``fun_grad_hess(X)`` returns (S,), (S, p), (S, p, p); ``fun(X)`` (S,)).  A start stops early where it has
    converged or its line search fails.  Returns the end points (S, p) and their
    objectives (S,).  For screening many starts: their ranking, not their convergence, is the point.

    >>> q = lambda X: (((X - 3) ** 2).sum(1), 2 * (X - 3), np.tile(2 * np.eye(2), (len(X), 1, 1)))
    >>> Xs, fs = newton_box_many(q, lambda X: q(X)[0], np.zeros((2, 2)), np.full(2, -1.0), np.array([1.0, 5.0]),
    ...                          iterations=3)
    >>> Xs.round(12).tolist()
    [[1.0, 3.0], [1.0, 3.0]]
    """
    X = np.clip(np.asarray(X0, dtype=float), lower, upper)
    F, G, H = fun_grad_hess(X)
    active = np.isfinite(F)
    width = upper - lower
    p = X.shape[1]
    for _ in range(iterations):
        idx = np.flatnonzero(active)
        if not idx.size:
            break
        x, g, h, f = X[idx], G[idx], H[idx], F[idx]
        eps = np.minimum(1e-10 * width, np.abs(x - np.clip(x - g, lower, upper)))
        held = ((x <= lower + eps) & (g > 0)) | ((x >= upper - eps) & (g < 0))
        free = ~held
        masked = np.where(free[:, :, None] & free[:, None, :], h, 0.0) + held[:, :, None] * np.eye(p)
        w, V = np.linalg.eigh(masked)
        w = np.maximum(np.abs(w), np.maximum(eig_floor * np.abs(w).max(axis=1, keepdims=True), 1e-300))
        gf = np.where(free, g, 0.0)
        d = -np.einsum("sij,sj->si", V, np.einsum("sji,sj->si", V, gf) / w)
        d[held] = 0.0
        decrement = -np.einsum("si,si->s", g, d) / 2.0
        moving = decrement > tol * np.maximum(1.0, np.abs(f))
        step = np.ones(len(idx))
        accepted = np.zeros(len(idx), bool)
        pending = moving.copy()
        new_x = x.copy()
        while pending.any() and step[pending].max() > 1e-14:
            rows = np.flatnonzero(pending)
            trial = np.clip(x[rows] + step[rows, None] * d[rows], lower, upper)
            value = fun(trial)
            ok = np.isfinite(value) & (value <= f[rows] + 1e-4 * np.einsum("si,si->s", g[rows], trial - x[rows]))
            new_x[rows[ok]], accepted[rows[ok]] = trial[ok], True
            pending[rows[ok]] = False
            step[rows[~ok]] *= 0.5
            pending &= step > 1e-14
        active[idx[~accepted]] = False  # converged, or no decrease found: it stays where it is
        if accepted.any():
            moved = idx[accepted]
            X[moved] = new_x[accepted]
            F[moved], G[moved], H[moved] = fun_grad_hess(X[moved])
    return X, F
