"""An experiment for issue 22, item 4 (not used by the package): projected Newton with a trust region.

    python benchmarks/trust_region.py            # both methods: 6 seeds x K = 2, 3 x n = 1e4, 1e5, then 4 real cells

bayescmoe.fit.optimize.newton_box halves a refused step along the saddle-free Newton direction.  Here a refused
step is instead shortened in a Euclidean trust region on the free variables (the least-damped step
-(|H| + mu I)^-1 g within the radius, mu by bisection), and the radius is kept between iterations (a quarter of the
step after a refused or poorly predicted one, doubled after a good full-length one; left alone when the predicted
decrease is below what f resolves).  Halving shortens every component alike, so a direction of near-zero curvature,
along which the saddle-free step is enormous, costs many halvings and then steps that barely move the rest.

Measured 2026-12-04 (2 cores, idle; `python benchmarks/trust_region.py`, benchmarks/RESULTS.md, issue 22 item 4): the
same optima on the 24 benchmark fits; fit_mle's total time over the 6 seeds 0.14 -> 0.14 s (K = 2, 1e4), 1.10 ->
1.03 s (K = 2, 1e5), 0.28 -> 0.27 s (K = 3, 1e4), 6.80 -> 3.63 s (K = 3, 1e5; Newton iterations on all rows
4, 37, 18, 4, 5, 4 -> 4, 4, 29, 4, 5, 4); on the 51 real-data cells of benchmarks/optima.py (--refresh-default, with the first version: no rule
for rounding-level steps) three defaults rose (salaries/frozen K = 3 +5.3 nats, to the best known; computers/frozen K = 2 +9.4;
cps1988/frozen K = 3 +27.4, to the best known), none fell, and the defaults' total time went from 115 to 81 s.
Not adopted: on three cells (galton/frozen K = 2, 3 and computers/frozen K = 2) the default now ends its walk
along a flat valley with a Newton decrement about 4x what f resolves, reported "did not converge" (line search),
where halving's path had converged (first version: 200 iterations creeping by one ulp of f).  A stopping rule for
that end is what is missing.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bayescmoe.fit.optimize import OptimizeResult, Status, _leave_saddle  # noqa: E402


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


def newton_box_trust(
    fun_grad_hess: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]],
    fun: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    maxiter: int = 200,
    tol: float = 1e-13,
    eig_floor: float = 1e-10,
) -> OptimizeResult:
    """bayescmoe.fit.optimize.newton_box with the trust region of the module docstring in place of halving."""
    x = np.clip(np.asarray(x0, dtype=float), lower, upper)
    f, g, H = fun_grad_hess(x)
    n_fev = 1
    if not np.isfinite(f):
        return OptimizeResult(x, f, g, H, Status.NOT_FINITE, 0, n_fev)
    width = upper - lower
    radius = np.inf
    for it in range(1, maxiter + 1):
        eps = np.minimum(1e-10 * width, np.abs(x - np.clip(x - g, lower, upper)))
        held = ((x <= lower + eps) & (g > 0)) | ((x >= upper - eps) & (g < 0))
        model = _Quadratic(g, H, ~held, eig_floor)
        d = model.step()
        decrement = -float(g @ d) / 2.0
        if decrement <= tol * max(1.0, abs(f)):
            left, evaluations = _leave_saddle(fun_grad_hess, fun, x, f, g, H, ~held, lower, upper)
            n_fev += evaluations
            if left is None:
                return OptimizeResult(x, f, g, H, Status.CONVERGED, it - 1, n_fev)
            x, f, g, H = left
            continue
        newton, accepted = model.length(), False
        while not accepted:
            step, length = model.within(radius)
            x_new = np.clip(x + step, lower, upper)
            f_new = fun(x_new)
            n_fev += 1
            accepted = bool(np.isfinite(f_new) and f_new <= f + 1e-4 * float(g @ (x_new - x)))
            if not accepted:
                radius = length / 4.0
                if radius <= 1e-14 * newton:
                    break
        resolvable = 1e3 * np.finfo(float).eps * max(1.0, abs(f))
        if accepted:
            predicted = model.predicted(x_new - x)
            # a step the radius cut short to a decrease f cannot resolve is no progress: as when none is found
            accepted = length >= newton or predicted > resolvable
            radius = _new_radius(radius, length, f - f_new, predicted, resolvable)
        if not accepted:
            # no decrease found: rounding, if the predicted decrease is below what f can resolve
            status = Status.CONVERGED if decrement <= resolvable else Status.LINE_SEARCH
            return OptimizeResult(x, f, g, H, status, it, n_fev)
        x = x_new
        f, g, H = fun_grad_hess(x)
        n_fev += 1
    return OptimizeResult(x, f, g, H, Status.MAX_ITER, maxiter, n_fev)


def _cells():
    DATA = HERE.parent / "tests" / "data"
    cells = {(c["dataset"], c["kind"], c["K"]): c for c in json.loads((DATA / "optima.json").read_text())["cells"]}
    for key in (
        ("galton", "frozen", 2),
        ("galton", "frozen", 3),
        ("computers", "frozen", 2),
        ("salaries", "frozen", 3),
    ):
        cell = cells[key]
        values = np.loadtxt(DATA / cell["file"], delimiter=",", skiprows=1, ndmin=2)
        yield key, cell, values


class _Stored:
    def predict(self, X):  # pragma: no cover - f0_mean is given
        raise AssertionError


def main() -> int:
    from prompts import three_prompts
    from run import start_point

    import bayescmoe as bc
    import bayescmoe.fit.mle as mle
    import bayescmoe.fit.problem as problem

    warnings.simplefilter("ignore")
    halving = problem.newton_box
    for name, method in (("halving", halving), ("trust", newton_box_trust)):
        problem.newton_box = mle.newton_box = method
        for spec in (bc.load_spec("laplace_two_prompts"), three_prompts()):
            for n in (10_000, 100_000):
                times, iters = [], []
                for seed in range(6):
                    X, y, _ = bc.simulate(spec, n, seed=seed)
                    start = start_point(spec, n, seed=seed)
                    if seed == 0:
                        bc.fit_mle(spec, X, y, init=start)  # compile
                    t0 = time.perf_counter()
                    fit = bc.fit_mle(spec, X, y, init=start)
                    times.append(time.perf_counter() - t0)
                    iters.append(fit.n_iter)
                print(f"{name:8s} {spec.name:22s} n={n:>6}: total {sum(times):.2f} s, median {np.median(times):.3f} s, "
                      f"Newton iterations on all rows {iters}", flush=True)  # fmt: skip
        for key, cell, values in _cells():
            X, y = values[:, : cell["d"]], values[:, cell["d"]]
            est = bc.ContaminatedMoE(prompts=cell["K"], random_state=0, pretrained=_Stored(), scale=cell["scale"])
            t0 = time.perf_counter()
            fit = est.fit(X, y, f0_mean=values[:, cell["d"] + 1]).fit_
            print(f"{name:8s} {'/'.join(map(str, key)):22s}: loglik {fit.loglik:.4f} (best known {cell['best']:.4f}), "
                  f"converged {fit.converged}, {fit.n_iter} iterations, {time.perf_counter() - t0:.2f} s", flush=True)  # fmt: skip
    problem.newton_box = mle.newton_box = halving
    return 0


if __name__ == "__main__":
    sys.exit(main())
