"""Issue 22, item 4: projected Newton with a trust region (bayescmoe.fit.optimize.newton_box) against halving.

    python benchmarks/trust_region.py            # both methods: 6 seeds x K = 2, 3 x n = 1e4, 1e5, then 4 real cells

Until 2026-12-05 newton_box halved a refused step along the saddle-free Newton direction (newton_box_halving here,
that code).  Halving shortens every component alike, so a direction of near-zero curvature, along which the
saddle-free step is enormous, costs many halvings and then steps that barely move the rest.  newton_box now
shortens a refused step in a Euclidean trust region (the least-damped step -(|H| + mu I)^-1 g within the radius),
keeps the radius between iterations, halves the full Newton step only when the trust region finds no resolvable
decrease, and its callers end a walk along a flat valley when two successive decrements predict less than
bayescmoe.fit.problem.STALL_NATS (1e-6 nats on all rows).

Measured 2026-12-05 (2 cores; this script and `python benchmarks/optima.py --refresh-default`, benchmarks/RESULTS.md):
on the 51 real-data cells three defaults rose (salaries/frozen K = 3 +5.34 nats, cps1988/frozen K = 3 +27.4, both to
the best known; computers/frozen K = 2 +9.45), none fell by more than 3.9e-6 nats, computers/frozen K = 1 now
converges, and the defaults' total time went 115.5 -> 64.1 s.
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

from bayescmoe.fit.optimize import OptimizeResult, Status, _leave_saddle, _newton_direction  # noqa: E402


def newton_box_halving(
    fun_grad_hess: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]],
    fun: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    maxiter: int = 200,
    tol: float = 1e-13,
    atol: float = 0.0,  # the callers' stopping rule for flat valleys came with the trust region: not used here
    eig_floor: float = 1e-10,
) -> OptimizeResult:
    """bayescmoe.fit.optimize.newton_box before the trust region (stop 33): Armijo halving along the saddle-free
    Newton direction, for the comparison."""
    x = np.clip(np.asarray(x0, dtype=float), lower, upper)
    f, g, H = fun_grad_hess(x)
    n_fev = 1
    if not np.isfinite(f):
        return OptimizeResult(x, f, g, H, Status.NOT_FINITE, 0, n_fev)
    width = upper - lower
    for it in range(1, maxiter + 1):
        eps = np.minimum(1e-10 * width, np.abs(x - np.clip(x - g, lower, upper)))
        held = ((x <= lower + eps) & (g > 0)) | ((x >= upper - eps) & (g < 0))
        d = _newton_direction(g, H, ~held, eig_floor)
        decrement = -float(g @ d) / 2.0
        if decrement <= tol * max(1.0, abs(f)):
            left, evaluations = _leave_saddle(fun_grad_hess, fun, x, f, g, H, ~held, lower, upper)
            n_fev += evaluations
            if left is None:
                return OptimizeResult(x, f, g, H, Status.CONVERGED, it - 1, n_fev)
            x, f, g, H = left
            continue
        step, accepted = 1.0, False
        while step > 1e-14:
            x_new = np.clip(x + step * d, lower, upper)
            f_new = fun(x_new)
            n_fev += 1
            if np.isfinite(f_new) and f_new <= f + 1e-4 * float(g @ (x_new - x)):
                accepted = True
                break
            step *= 0.5
        if not accepted:
            # no decrease found: rounding, if the predicted decrease is below what f can resolve
            resolvable = 1e3 * np.finfo(float).eps * max(1.0, abs(f))
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
    import bayescmoe.fit.problem as problem

    warnings.simplefilter("ignore")
    trust = problem.newton_box
    for name, method in (("halving", newton_box_halving), ("trust", trust)):
        problem.newton_box = method
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
    problem.newton_box = trust
    return 0


if __name__ == "__main__":
    sys.exit(main())
