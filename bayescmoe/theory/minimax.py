"""Least favourable truths (MODEL.md section 5): where the asymptotic SDs grow fastest as the prompt merges.

The prompt sits at distance Delta from the pre-trained expert, ``eta = eta0 + Delta u`` with ``nu`` f0's
variance (``parameter="eta"``), or ``eta = eta0`` and ``nu = nu0 + Delta`` (``parameter="nu"``).  At a
fixed rest of the truth -- the gate's ``beta*, tau*`` (or ``lam*``) and the direction ``u`` -- each
asymptotic standard deviation ``sqrt(diag I^-1)`` grows like ``Delta^e`` as Delta -> 0.  The least
favourable truths of a loss are those with the most negative exponent ``e``; :func:`least_favourable`
searches the spec's box for them.

**Why they are where they are.**  Near Delta = 0 (a Gaussian f0 with ``h0 = h``) the prompt's density is
``f = f0 + Delta u.grad f + O(Delta^2)``, so the score of the gate's intercept is

    d log p / d tau = g (1 - g) (f - f0) / p = (1 - g(x)) Delta s_u + O(Delta^2),

``s_u`` the score of the prompt's parameters along the merge direction.  When ``1 - g(x)`` does not
depend on x (``beta* = 0``: a constant gate), the tau-score *is* a multiple of a prompt score to first
order: the two directions are collinear, the information's smallest eigenvalue vanishes as Delta^4
instead of Delta^2, and ``sd(tau)`` (hence ``sd(exp tau)``) grows as Delta^-2 and the prompt's parameters
along ``u`` as Delta^-1 -- the exponents of the paper's minimax rates.  When ``beta* != 0`` no combination
of the gate's scores ``(1 - g(x)) (c0 + c.x) Delta s_u`` is a prompt score, because ``1 / (1 - g(x)) =
1 + exp(beta*.x + tau*)`` is not linear in x: the gate's SDs grow only as Delta^-1 and the prompt's stay
bounded.  The linear part of ``1 / (1 - g)`` is absorbed by the beta-scores, so what separates the two
regimes is its curvature, of order ``|beta*|^2``: a truth with a small ``beta*`` behaves like
``beta* = 0`` while ``Delta >> |beta*|^2 / 4`` and like a generic truth below.  The paper's specs take
``beta*`` of norm 1.6, which is why their rates follow the generic exponents (and why the local Fisher
predictions of the rate studies do).  A gate nearly closed everywhere (``tau*`` very negative, so that
``1 - g ~ 1``) is a second, approximate way to make ``1 - g`` constant.

**The search.**  The exponent of a loss at a truth is measured as the least-squares slope of log SD on
log Delta over the asymptotic window ``Delta <= window`` of the scan, with the information computed on
a fixed quadrature design (:class:`~bayescmoe.theory.information.QuadratureDesign`, smooth in the truth).  The
search minimises that slope over the box -- ``beta*`` and ``tau*`` (or ``lam*``) within the spec's
bounds and, for ``parameter="eta"``, the direction ``u`` (any non-zero vector of [-1, 1]^d, normalised)
-- by L-BFGS-B with finite-difference gradients, from the spec's own truth and from ``starts - 1``
scrambled Sobol points of the box.  A small penalty (``1e-2`` times the mean squared distance, in units
of the box) prefers, among equally steep truths, the one nearest the spec's; a last step (SLSQP) then
moves the best truth found to the nearest one to the spec's whose slope is within :data:`SLACK` of it: the
truth reported shows what must change.  The exponent is then re-measured at the optimum on a finer design and on a second,
independent one; its numerical error is the larger of their difference and of how far the local slopes
over the window stray from it (a slope that has not settled shows as a large error).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize
from scipy.stats import qmc

from bayescmoe.exceptions import BayescmoeError
from bayescmoe.fit.results import _summary_sd
from bayescmoe.model.simulate import gate_probability
from bayescmoe.model.spec import Spec, load_spec
from bayescmoe.theory.identifiability import merge_direction, prompt_at
from bayescmoe.theory.information import QuadratureDesign, asymptotic_sd

__all__ = ["LeastFavourable", "LossExponent", "least_favourable", "PAPER_EXPONENTS", "DEFAULT_DELTAS"]

#: The paper's exponents of Delta (loss ~ n^-1/2 Delta^e) in the non-distinguishable softmax setting.
PAPER_EXPONENTS = {"beta": -1.0, "tau": -2.0, "exp_tau": -2.0, "eta": -1.0, "b": -1.0, "nu": -1.0}
#: The scan of Delta: from the pre-asymptotic 0.5 down to 5e-4, where the information's condition number
#: reaches ~1e13 at the least favourable truths (double precision resolves it after diagonal scaling).
DEFAULT_DELTAS = tuple(float(d) for d in np.geomspace(0.5, 5e-4, 13))
#: Delta at and below which the scan counts as asymptotic (the slopes there define the exponents).
WINDOW = 0.05
#: Weight of the squared distance to the spec's truth (in units of the box) added to the searched slope.
PENALTY = 1e-2
#: A slope is settled when its numerical error is at most this.
SETTLED = 0.05
#: Searched slopes closer than this are ties (the nearer truth to the spec's is kept).
TIE = 0.01
#: The nearest truth to the spec's is sought among those at most this much less steep than the best found:
#: small, so that it stays settled (the boundary of the least favourable set is where the slope starts to turn).
SLACK = 0.005


@dataclass(frozen=True)
class LossExponent:
    """One loss's least favourable exponent and, beside it, the exponent at the spec's own truth.

    Attributes
    ----------
    loss : str
    exponent, error : float
        Slope of log SD on log Delta over the window at the least favourable truth, and its numerical error.
    truth : dict
        The least favourable truth at the smallest Delta of the scan (MODEL.md names).
    direction : list of float
        Its merge direction u (``parameter="eta"``).
    spec_exponent, spec_error : float
        The same at the spec's truth (its gate, its merge direction).
    paper : float or None
        The paper's exponent (``None`` where the seeds state none).
    local_slopes, spec_local_slopes : list of float
        Slopes between consecutive Deltas of the scan, at both truths.
    smallest_eigenvalue : float
        Slope of log(smallest eigenvalue) on log Delta over the window, at the least favourable truth, of
        the information scaled to a unit diagonal (a correlation matrix of the scores): 2 where a gate
        score and a prompt score are collinear to first order in Delta, 0 where no combination is.
    flattest : list of (label, loading)
        The parameters that load most on that eigenvector, at the smallest Delta.
    gate_spread : float
        ``sd(1 - g(x)) / mean(1 - g(x))`` over the covariates at the least favourable truth: 0 for a
        constant gate.
    """

    loss: str
    exponent: float
    error: float
    truth: dict[str, Any]
    direction: list[float]
    spec_exponent: float
    spec_error: float
    paper: float | None
    local_slopes: list[float] = field(repr=False)
    spec_local_slopes: list[float] = field(repr=False)
    smallest_eigenvalue: float = float("nan")
    flattest: list = field(default_factory=list, repr=False)
    gate_spread: float = float("nan")

    @property
    def settled(self) -> bool:
        return self.error <= SETTLED


@dataclass(frozen=True)
class LeastFavourable:
    """The result of :func:`least_favourable`."""

    spec: Spec = field(repr=False)
    parameter: str
    deltas: tuple[float, ...]
    losses: dict[str, LossExponent]
    spec_smallest_eigenvalue: float
    spec_flattest: list
    evaluations: int
    seconds: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values: ``least_favourable`` maps each loss to its exponent and truth (and the rest)."""
        return {
            "spec": self.spec.name,
            "parameter": self.parameter,
            "deltas": list(self.deltas),
            "window": WINDOW,
            "least_favourable": {
                name: {
                    "exponent": r.exponent,
                    "error": r.error,
                    "settled": r.settled,
                    "truth": _plain(r.truth),
                    "direction": r.direction,
                    "spec_exponent": r.spec_exponent,
                    "spec_error": r.spec_error,
                    "paper": r.paper,
                    "local_slopes": r.local_slopes,
                    "spec_local_slopes": r.spec_local_slopes,
                    "smallest_eigenvalue_exponent": r.smallest_eigenvalue,
                    "flattest_direction": [[label, w] for label, w in r.flattest],
                    "gate_spread": r.gate_spread,
                }
                for name, r in self.losses.items()
            },
            "spec_smallest_eigenvalue_exponent": self.spec_smallest_eigenvalue,
            "spec_flattest_direction": [[label, w] for label, w in self.spec_flattest],
            "evaluations": self.evaluations,
            "seconds": self.seconds,
            "method": self.method,
        }


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (np.asarray(v).tolist() if np.ndim(v) else float(v)) for k, v in params.items()}


class _Truths:
    """The searched part of the truth as a point z of a box, and the truth it makes at distance Delta."""

    def __init__(self, spec: Spec, parameter: str):
        self.spec, self.parameter = spec, parameter
        self.base = spec.truth_at(1000)
        gate = ("beta", "tau") if spec.gating == "softmax" else ("lam",)
        self.gate = [(name, spec.dim if name == "beta" else 0) for name in gate]
        lo, hi = [], []
        for name, length in self.gate:
            lo += [spec.bounds[name][0]] * max(length, 1)
            hi += [spec.bounds[name][1]] * max(length, 1)
        self.n_gate = len(lo)
        if parameter == "eta":  # the direction u, as any non-zero vector of [-1, 1]^d
            lo += [-1.0] * spec.dim
            hi += [1.0] * spec.dim
        self.lower, self.upper = np.array(lo), np.array(hi)
        u0 = merge_direction(spec)
        gate0 = np.concatenate([np.atleast_1d(self.base[name]) for name, _ in self.gate])
        self.z0 = np.concatenate([gate0, u0 / np.abs(u0).max()]) if parameter == "eta" else gate0

    def direction(self, z: np.ndarray) -> np.ndarray | None:
        if self.parameter != "eta":
            return None
        u = z[self.n_gate :]
        norm = np.linalg.norm(u)
        return u / norm if norm > 1e-12 else merge_direction(self.spec)

    def params(self, z: np.ndarray, delta: float) -> dict[str, Any]:
        base, start = dict(self.base), 0
        for name, length in self.gate:
            stop = start + max(length, 1)
            base[name] = z[start:stop].copy() if length else float(z[start])
            start = stop
        return prompt_at(self.spec, base, delta, self.parameter, self.direction(z))

    def distance2(self, z: np.ndarray) -> float:
        return float(np.mean(((z - self.z0) / (self.upper - self.lower)) ** 2))


def _log_sd(design: QuadratureDesign, truths: _Truths, z: np.ndarray, deltas: Sequence[float]):
    """log SD per loss (rows: deltas), the log smallest eigenvalue of the scores' correlation matrix at each
    delta, and its eigenvector at the last delta."""
    rows, eig = [], []
    for delta in deltas:
        params = truths.params(z, delta)
        info = design.information(params)
        rows.append(_summary_sd(asymptotic_sd(truths.spec, info, params)))
        scale = 1.0 / np.sqrt(np.diag(info))
        w, V = np.linalg.eigh(info * scale[:, None] * scale[None, :])
        eig.append(w[0])
    names = list(rows[0])
    return names, np.log([[r[k] for k in names] for r in rows]), np.log(np.clip(eig, 1e-300, None)), V[:, 0]


def _fit_slope(logd: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Least-squares slopes of each column of ``values`` on ``logd``."""
    x = logd - logd.mean()
    return x @ (values - values.mean(axis=0)) / (x @ x)


def least_favourable(
    spec: Spec | str,
    *,
    parameter: str = "eta",
    deltas: Sequence[float] | None = None,
    n_mc: int = 1000,
    nodes: int = 16,
    search_n_mc: int = 200,
    search_nodes: int = 10,
    starts: int = 4,
    maxiter: int = 30,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> LeastFavourable:
    """Search the spec's box for the truths whose asymptotic SDs grow fastest as the prompt merges.

    See the module docstring for the model, the reason, and the method.

    Parameters
    ----------
    spec : Spec or str
        Any setting; the question is sharpest for a Gaussian f0 with ``h0 = h`` (not distinguishable).
    parameter : {"eta", "nu"}
        What merges: ``eta = eta0 + Delta u`` (and ``u`` is searched) or ``nu = nu0 + Delta``.
    deltas : sequence of float, optional
        The scan of Delta (default :data:`DEFAULT_DELTAS`, 0.5 down to 5e-4); the exponents are the
        slopes over the Deltas at most :data:`WINDOW`.
    n_mc, nodes : int
        Covariate rows and quadrature nodes per component of the design on which the exponents are
        reported (a second design, seeded ``seed + 1``, gives their numerical error).
    search_n_mc, search_nodes : int
        The same for the (cheaper) design of the search.
    starts, maxiter : int
        The search's budget: local searches from the spec's truth and ``starts - 1`` Sobol points, each
        of at most ``maxiter`` L-BFGS-B iterations, per loss.
    progress : callable, optional
        ``progress(loss, done, total)`` after each local search.

    Returns
    -------
    LeastFavourable
        ``losses`` maps each loss (``beta, tau, exp_tau, eta, [b], nu`` or ``lam, ...``) to a
        :class:`LossExponent`; ``to_dict()`` gives JSON.

    Examples
    --------
    >>> lf = least_favourable("softmax_eta_merging", starts=1, maxiter=3, n_mc=300)  # doctest: +SKIP
    >>> round(lf.losses["exp_tau"].exponent), round(lf.losses["exp_tau"].spec_exponent)  # doctest: +SKIP
    (-2, -1)
    """
    spec = load_spec(spec).require_one_prompt("the least favourable search")
    if parameter not in ("eta", "nu"):
        raise BayescmoeError(f"parameter must be 'eta' or 'nu', got {parameter!r}")
    if parameter == "nu" and spec.pretrained.family != "normal":
        raise BayescmoeError(f"a merge of nu needs the normal pre-trained family, not {spec.pretrained.family!r}")
    deltas = tuple(sorted((float(d) for d in (DEFAULT_DELTAS if deltas is None else deltas)), reverse=True))
    window = np.array([d for d in deltas if d <= WINDOW * (1 + 1e-9)])
    if len(deltas) < 3 or deltas[-1] <= 0 or len(window) < 3:
        raise BayescmoeError(f"deltas must be positive with at least 3 values at or below {WINDOW}, got {deltas}")
    if not (isinstance(starts, int) and starts >= 1 and isinstance(maxiter, int) and maxiter >= 0):
        raise BayescmoeError(f"starts must be >= 1 and maxiter >= 0, got {starts!r} and {maxiter!r}")
    t0 = time.perf_counter()
    truths = _Truths(spec, parameter)
    search = QuadratureDesign(spec, n_x=search_n_mc, nodes=search_nodes, seed=seed)
    ends = np.log([window[0], window[-1]])
    counter = {"n": 0}
    names = _log_sd(search, truths, truths.z0, [window[-1]])[0]

    def slope(z, k):
        counter["n"] += 1
        logsd = _log_sd(search, truths, z, window[[0, -1]])[1]
        return (logsd[1, k] - logsd[0, k]) / (ends[1] - ends[0])

    def objective(z, k):
        return slope(z, k) + PENALTY * truths.distance2(z)

    def nearest(z, k, level):
        """The truth nearest the spec's whose slope is at most ``level``: SLSQP from ``z`` (which is one),
        then, should its end point miss the constraint, the farthest feasible point on the segment to it."""
        res = optimize.minimize(
            truths.distance2, z, method="SLSQP", bounds=bounds,
            constraints=[{"type": "ineq", "fun": lambda v: level - slope(v, k)}],
            options={"maxiter": 3 * maxiter, "eps": 1e-4},
        )  # fmt: skip
        lo, hi = 0.0, 1.0
        if slope(res.x, k) <= level:
            lo = 1.0
        else:
            for _ in range(12):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if slope(z + mid * (res.x - z), k) <= level else (lo, mid)
        return z + lo * (res.x - z)

    m = int(np.ceil(np.log2(max(starts - 1, 1))))  # Sobol points come in powers of 2: the first starts - 1
    sobol = qmc.Sobol(len(truths.z0), scramble=True, seed=seed).random_base2(m)[: starts - 1]
    points = [truths.z0] + [truths.lower + s * (truths.upper - truths.lower) for s in sobol]
    bounds = list(zip(truths.lower, truths.upper))
    searched = [k for k in names if k != "exp_tau"]  # exp(tau*) SD(tau) has tau's slope: one search serves both
    found: dict[str, np.ndarray] = {}
    for step, name in enumerate(searched):
        k = names.index(name)
        best = (objective(truths.z0, k), truths.z0)  # the spec's own truth: replaced only by a steeper one
        for i, z in enumerate(points):
            res = optimize.minimize(
                objective, z, args=(k,), method="L-BFGS-B", bounds=bounds, options={"maxiter": maxiter, "eps": 1e-4}
            )
            value = float(res.fun)
            nearer = truths.distance2(res.x) < truths.distance2(best[1])
            if value < best[0] - TIE or (value <= best[0] + TIE and nearer):
                best = (value, res.x)
            if progress:
                progress(name, step * len(points) + i + 1, len(searched) * len(points))
        # among the truths as steep as the best (within TIE), the nearest to the spec's
        found[name] = best[1] if best[1] is truths.z0 else nearest(best[1], k, slope(best[1], k) + SLACK)
    found["exp_tau"] = found.get("tau")

    fine = QuadratureDesign(spec, n_x=n_mc, nodes=nodes, seed=seed)
    check = QuadratureDesign(spec, n_x=n_mc, nodes=nodes, seed=seed + 1)
    logd = np.log(deltas)
    in_window = np.array([d <= WINDOW * (1 + 1e-9) for d in deltas])

    def measure(z):
        _, logsd, logeig, vector = _log_sd(fine, truths, z, deltas)
        again = _log_sd(check, truths, z, window)[1]
        slopes = _fit_slope(logd[in_window], logsd[in_window])
        other = _fit_slope(np.log(window), again)
        local = np.diff(logsd, axis=0) / np.diff(logd)[:, None]
        stray = np.abs(local[in_window[1:] & in_window[:-1]] - slopes).max(axis=0)
        error = np.maximum(np.abs(slopes - other), stray)
        eig = float(_fit_slope(logd[in_window], logeig[in_window, None])[0])
        flattest = [(spec.labels[i], float(vector[i])) for i in np.argsort(-np.abs(vector))[:4]]
        return slopes, error, local, eig, flattest, truths.params(z, deltas[-1])

    spec_slopes, spec_error, spec_local, spec_eig, spec_flat, _ = measure(truths.z0)
    losses = {}
    for name in names:
        slopes, error, local, eig, flattest, params = measure(found[name])
        k = names.index(name)
        one_minus_g = 1.0 - gate_probability(spec, fine.X, params)
        losses[name] = LossExponent(
            loss=name,
            exponent=float(slopes[k]),
            error=float(error[k]),
            truth=params,
            direction=[] if truths.direction(found[name]) is None else truths.direction(found[name]).tolist(),
            spec_exponent=float(spec_slopes[k]),
            spec_error=float(spec_error[k]),
            paper=PAPER_EXPONENTS.get(name) if spec.gating == "softmax" else None,
            local_slopes=local[:, k].tolist(),
            spec_local_slopes=spec_local[:, k].tolist(),
            smallest_eigenvalue=eig,
            flattest=flattest,
            gate_spread=float(one_minus_g.std() / one_minus_g.mean()),
        )
    method = (
        f"L-BFGS-B (finite-difference gradients, at most {maxiter} iterations) from the spec's truth and "
        f"{starts - 1} Sobol points of the box, per loss; slope of log SD over Delta in "
        f"[{window[-1]:.2g}, {window[0]:.2g}] on a {search_n_mc} x {search_nodes} quadrature design; "
        f"exponents re-measured on {n_mc} x {nodes} designs (seeds {seed}, {seed + 1})"
    )
    return LeastFavourable(
        spec, parameter, deltas, losses, spec_eig, spec_flat, counter["n"], time.perf_counter() - t0, method
    )
