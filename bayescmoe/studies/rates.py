"""Convergence-rate studies (MODEL.md sections 3-4): run the fits, fit the slopes, tabulate.

A study fits the MLE on ``reps`` independent datasets at each ``n`` of a grid, the truth
evaluated at that ``n`` through the spec's schedules, and records every loss of section 3 in a
:class:`~bayescmoe.studies.store.Store`.  The empirical rate of a loss is minus the slope of
log(mean loss over replications) against log(n), by least squares, with a 95% percentile
bootstrap interval over replications (resampled within each n).  Fits that failed or did not
converge are counted and shown, never averaged in; estimates on the box are averaged in (they
are the MLE over the compact space) and counted.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bayescmoe.exceptions import BayescmoeError, FitError
from bayescmoe.fit.mle import fit_mle
from bayescmoe.model.simulate import simulate
from bayescmoe.model.spec import Spec, load_spec, spec_from_dict
from bayescmoe.studies.executors import run_tasks
from bayescmoe.studies.store import Store
from bayescmoe.theory.information import predicted_losses
from bayescmoe.theory.losses import evaluate_losses
from bayescmoe.theory.rates import theoretical_rates

__all__ = ["Start", "RateRow", "RateStudy", "run_rates", "rate_table", "empirical_rate", "n_grid", "schedule_variant"]

BOOTSTRAP = 2000
#: Sample sizes (at most) at which the local Fisher prediction is computed, and its Monte Carlo size.
LOCAL_POINTS, LOCAL_MC = 12, 100_000


@dataclass(frozen=True)
class Start:
    """How a study starts each fit.

    ``"perturbed"``: the truth at n plus N(0, (scale * n^-power)^2) noise on every coordinate,
    clipped into the box (the literature's start: near the truth, closer as n grows);
    ``"truth"``: the truth at n; ``"multistart"``: :func:`bayescmoe.fit_mle`'s random starts.
    """

    kind: str = "perturbed"
    scale: float = 0.5
    power: float = 0.25

    def __post_init__(self):
        if self.kind not in ("perturbed", "truth", "multistart"):
            raise FitError(f"start must be 'perturbed', 'truth' or 'multistart', got {self.kind!r}")

    @property
    def label(self) -> str:
        if self.kind == "perturbed":
            return f"perturbed({self.scale:g} n^-{self.power:g})"
        return self.kind

    def init(self, spec: Spec, n: int, rng: np.random.Generator):
        if self.kind == "multistart":
            return "multistart"
        truth = spec.layout.pack(spec.truth_at(n))
        if self.kind == "perturbed":
            truth = truth + rng.normal(scale=self.scale * n**-self.power, size=truth.size)
        return spec.layout.unpack(np.clip(truth, *spec.bounds_arrays()))


def n_grid(n_min: int, n_max: int, num: int) -> list[int]:
    """``num`` sample sizes log-spaced over [n_min, n_max], rounded, distinct.

    >>> n_grid(1000, 100000, 5)
    [1000, 3162, 10000, 31623, 100000]
    """
    if not (isinstance(num, int) and num >= 2 and 1 <= n_min < n_max):
        raise BayescmoeError(f"need n_min < n_max and at least 2 sizes, got {n_min}, {n_max}, {num}")
    return sorted({round(v) for v in np.logspace(np.log10(n_min), np.log10(n_max), num)})


def schedule_variant(spec: Spec | str, c: float) -> Spec:
    """The spec with every schedule's constant set to ``c`` (named ``<name>_c<c>``), for c-sweeps."""
    data = load_spec(spec).to_dict()
    if not data["truth"].get("schedule"):
        raise BayescmoeError(f"spec {data['name']!r} has no schedule to vary")
    for schedule in data["truth"]["schedule"]:
        schedule["c"] = c
    data["name"] = f"{data['name']}_c{c:g}"
    return spec_from_dict(data, source=f"{data['name']} (c = {c:g})")


def fit_one(task: tuple) -> dict[str, Any]:
    """One fit of a study (runs in a worker): simulate, fit, score every loss."""
    spec_dict, n, rep, study_seed, start = task
    spec = spec_from_dict(spec_dict)
    data_seed, start_seed, fit_seed = np.random.SeedSequence([study_seed, n, rep]).generate_state(3)
    X, y, truth = simulate(spec, n, seed=int(data_seed))
    row = {
        "spec_hash": spec.digest(),
        "init": start.label,
        "study_seed": study_seed,
        "n": n,
        "rep": rep,
        "seed": int(data_seed),
        "params": {},
        "losses": {},
        "loglik": None,
        "error": None,
    }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # recorded in the row instead
            fit = fit_mle(spec, X, y, init=start.init(spec, n, np.random.default_rng(start_seed)), seed=int(fit_seed))
    except BayescmoeError as err:  # recorded, counted as failed, never dropped
        return row | {
            "status": "error",
            "converged": False,
            "at_bound": False,
            "n_iter": 0,
            "seconds": 0.0,
            "error": str(err),
        }
    return row | {
        "status": fit.status,
        "converged": fit.converged,
        "at_bound": bool(fit.at_bound.any()),
        "n_iter": fit.n_iter,
        "seconds": fit.seconds,
        "loglik": fit.loglik,
        "losses": evaluate_losses(spec, fit.params, truth),
        "params": {k: np.asarray(v).tolist() for k, v in fit.params.items()},
    }


@dataclass
class RateStudy:
    """A study's identity and its recorded fits (see :func:`run_rates`)."""

    spec: Spec
    start: Start
    seed: int
    ns: list[int]
    reps: int
    rows: list[dict[str, Any]] = field(repr=False)


def run_rates(
    spec: Spec | str,
    n_grid: Sequence[int],
    reps: int,
    seed: int = 0,
    start: Start | str = "perturbed",
    store: Store | str | Path = ":memory:",
    *,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RateStudy:
    """Fit the MLE on ``reps`` datasets at each n of ``n_grid``, recording every fit in ``store``.

    Parameters
    ----------
    spec : Spec or str
    n_grid : sequence of int
        Sample sizes (see :func:`n_grid`).
    reps : int
        Replications per n.
    seed : int
        Study seed: fit (n, rep) uses data, start and subsample seeds drawn from
        ``SeedSequence([seed, n, rep])``, so a study is the same whatever the order, the number
        of workers or the interruptions.
    start : Start or "perturbed" | "truth" | "multistart"
    store : Store, path or ":memory:"
        Fits already in the store are skipped (the study resumes).
    workers, scheduler :
        Local worker processes, or the address of a Dask scheduler.
    progress : callable, optional
        ``progress(done, total)`` after each fit (the CLI draws a bar with it).
    """
    spec = load_spec(spec)
    if spec.has_pretrained and spec.pretrained.mean_from_data:
        raise BayescmoeError(
            f"a rate study simulates its data: {spec.name}'s frozen expert takes its mean from the data; "
            "give it a formula mean (expert, eta) to simulate"
        )
    start = start if isinstance(start, Start) else Start(start)
    if spec.overfit and start.kind != "multistart":
        raise BayescmoeError(
            f"{spec.name} is over-specified (K* = {spec.K_true} < K = {spec.K}): its fits cannot start from the "
            f"truth; use start='multistart'"
        )
    if not (isinstance(reps, int) and reps >= 2):
        raise BayescmoeError(f"reps must be an integer >= 2 (slopes need a spread), got {reps!r}")
    ns = sorted({int(n) for n in n_grid})
    if len(ns) < 2 or ns[0] <= spec.n_params:
        raise BayescmoeError(f"need at least 2 sample sizes, all above the {spec.n_params} parameters; got {ns}")
    owned = not isinstance(store, Store)
    db = Store(store) if owned else store
    try:
        digest = db.register(spec)
        done = db.done(digest, start.label, seed)
        spec_dict = spec.to_dict()
        tasks = [(spec_dict, n, rep, seed, start) for n in ns for rep in range(reps) if (n, rep) not in done]
        total, count = len(ns) * reps, len(ns) * reps - len(tasks)
        if progress:
            progress(count, total)
        for row in run_tasks(fit_one, tasks, workers=workers, scheduler=scheduler):
            db.add(row)
            count += 1
            if progress:
                progress(count, total)
        rows = [r for r in db.rows(digest, start.label, seed) if r["n"] in ns and r["rep"] < reps]
    finally:
        if owned:
            db.close()
    return RateStudy(spec, start, seed, ns, reps, rows)


# -- slopes -------------------------------------------------------------------------------------


def _slopes(logn: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Minus the least-squares slope of log(means) on logn, for each row of ``means`` (B, k)."""
    x = logn - logn.mean()
    logm = np.log(means)
    return -(logm - logm.mean(axis=-1, keepdims=True)) @ x / (x @ x)


def empirical_rate(rows: list[dict], loss: str, n0: int = 0, boot: int = BOOTSTRAP) -> dict[str, Any]:
    """Rate r of ``loss`` (log mean loss ~ -r log n) over n >= n0, with a bootstrap 95% CI.

    Returns a dict with ``empirical``, ``ci_low``, ``ci_high``, ``n_fits`` (converged fits used),
    ``n_failed`` (not converged or errors), ``n_bound`` (used, on the box), ``n_values`` and
    ``box_share``: the largest share, over n, of the summed loss at an n that comes from fits on
    the box (above 1/2, a few estimates on the box decide that n's mean, and with it the slope).
    The bootstrap resamples replications within each n, ``boot`` times, from a fixed seed: a
    table computed twice from the same fits is the same table.
    """
    used = [r for r in rows if r["n"] >= n0 and r["converged"] and loss in r["losses"]]
    failed = sum(1 for r in rows if r["n"] >= n0 and not r["converged"])
    groups: dict[int, list[float]] = {}
    on_box: dict[int, float] = {}
    for r in used:
        groups.setdefault(r["n"], []).append(r["losses"][loss])
        on_box[r["n"]] = on_box.get(r["n"], 0.0) + (r["losses"][loss] if r["at_bound"] else 0.0)
    ns = sorted(groups)
    shares = [on_box[n] / sum(groups[n]) for n in ns if sum(groups[n]) > 0]
    out = {
        "n0": n0,
        "n_fits": len(used),
        "n_failed": failed,
        "n_bound": sum(r["at_bound"] for r in used),
        "n_values": len(ns),
        "box_share": max(shares, default=0.0),
        "empirical": None,
        "ci_low": None,
        "ci_high": None,
    }
    samples = [np.asarray(groups[n]) for n in ns]
    if len(ns) < 2 or any(s.mean() <= 0 for s in samples):
        return out
    logn = np.log(ns)
    out["empirical"] = float(_slopes(logn, np.array([s.mean() for s in samples])))
    rng = np.random.default_rng(0)
    means = np.column_stack([s[rng.integers(0, len(s), (boot, len(s)))].mean(axis=1) for s in samples])
    boots = _slopes(logn, np.maximum(means, np.finfo(float).tiny))
    out["ci_low"], out["ci_high"] = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
    return out


@dataclass(frozen=True)
class RateRow:
    """One row of a rate table (rates are positive exponents r, loss ~ n^-r)."""

    setting: str
    parameter: str
    theory: float | None
    theory_text: str
    theory_reason: str
    paper: str
    empirical: float | None
    ci_low: float | None
    ci_high: float | None
    n_fits: int
    n_failed: int
    n_bound: int
    n0: int
    start: str
    local: float | None = None  # the slope the local Fisher-information scaling predicts (section 5)
    by_n0: tuple = ()  # dicts {n0, empirical, ci_low, ci_high, local}: how the slope moves with the cut-off
    # the same over the regular region: the n from which on no estimate ended on the box
    regular_n0: int | None = None
    regular: dict = field(default_factory=dict)  # {empirical, ci_low, ci_high, local}
    box_share: float = 0.0  # the largest share of an n's summed loss that comes from estimates on the box

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"box_dominated": self.box_dominated}

    @property
    def box_dominated(self) -> bool:
        """Whether estimates on the box decide some n's mean loss (and with it the slope over the whole grid)."""
        return self.box_share > 0.5

    @property
    def agrees(self) -> bool | None:
        """Within 0.05 of the theory with the CI covering it (None without a theory or a slope)."""
        if self.theory is None or self.empirical is None:
            return None
        return abs(self.empirical - self.theory) <= 0.05 and self.ci_low <= self.theory <= self.ci_high


def regular_cutoff(rows: list[dict]) -> int | None:
    """The smallest n of the grid above the last n where a fit ended on the box (None if it is the largest).

    >>> regular_cutoff([{"n": 10, "at_bound": True}, {"n": 20, "at_bound": False}, {"n": 30, "at_bound": False}])
    20
    """
    ns = sorted({r["n"] for r in rows})
    bounded = [r["n"] for r in rows if r["at_bound"]]
    if not bounded:
        return ns[0] if ns else None
    later = [n for n in ns if n > max(bounded)]
    return later[0] if later else None


def rate_table(
    study: RateStudy, n0: int = 0, cutoffs: Sequence[int] | None = None, local: bool = False, local_mc: int = LOCAL_MC
) -> list[RateRow]:
    """The study's rate table: theory, the paper's rate, ours with its CI, per loss.

    ``n0`` is the lower cut-off of the fitted range; ``cutoffs`` (default: the grid's sizes
    leaving at least three) are reported in ``by_n0`` to show how each slope moves with n0.
    ``local=True`` adds the slope predicted by the expected Fisher information at the truth
    along the grid (:func:`bayescmoe.theory.information.predicted_losses` with ``local_mc`` simulated
    observations per point; a few seconds per study).
    """
    theory = theoretical_rates(study.spec)
    cutoffs = list(cutoffs) if cutoffs is not None else study.ns[:-2]
    # the prediction is smooth in n: a dozen points of the grid (and its ends) carry its slopes
    step = max(1, len(study.ns) // LOCAL_POINTS)
    local_ns = np.array(sorted(set(study.ns[::step]) | {study.ns[0], study.ns[-1]}))
    # the local prediction needs the truth in the fitted model: an over-specified spec has none
    predicted = predicted_losses(study.spec, local_ns, n_mc=local_mc) if local and not study.spec.overfit else {}
    regular_n0 = regular_cutoff(study.rows)

    def local_slope(loss, lower):
        keep = local_ns >= lower
        if loss not in predicted or keep.sum() < 2:
            return None
        return float(_slopes(np.log(local_ns[keep]), predicted[loss][keep]))

    keep = ("empirical", "ci_low", "ci_high")
    rows = []
    for loss, rate in theory.items():
        main = empirical_rate(study.rows, loss, n0)
        moves = tuple(
            {"n0": c, "local": local_slope(loss, c)}
            | {k: v for k, v in empirical_rate(study.rows, loss, c).items() if k in keep}
            for c in cutoffs
        )
        regular = {}
        if regular_n0 is not None:
            regular = {k: v for k, v in empirical_rate(study.rows, loss, max(n0, regular_n0)).items() if k in keep}
            regular["local"] = local_slope(loss, max(n0, regular_n0))
        rows.append(
            RateRow(
                setting=study.spec.name,
                parameter=loss,
                theory=rate.exponent,
                theory_text=rate.text,
                theory_reason=rate.reason,
                paper=study.spec.paper.get(loss, ""),
                empirical=main["empirical"],
                ci_low=main["ci_low"],
                ci_high=main["ci_high"],
                n_fits=main["n_fits"],
                n_failed=main["n_failed"],
                n_bound=main["n_bound"],
                n0=n0,
                start=study.start.label,
                by_n0=moves,
                local=local_slope(loss, n0),
                regular_n0=regular_n0,
                regular=regular,
                box_share=main["box_share"],
            )
        )
    return rows
