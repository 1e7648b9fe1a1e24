"""How the posterior widens as the prompt merges into the pre-trained expert (MODEL.md sections 4-5).

The prompt sits at distance Delta from the pre-trained expert, ``eta = eta0 + Delta u`` (u the
spec's merge direction, else the normalised ones vector) with ``nu`` equal to f0's variance,
so ``Delta = ||(Delta eta, Delta nu)||``.  At every Delta of a grid and every n, ``reps``
datasets are simulated; on each the MLE is fitted (started at the truth) and the posterior is
sampled with NUTS from the MLE (:func:`bayescmoe.sample_posterior`).  The same grid is run for
the spec and for a *distinguishable counterpart*: the same setting with f0 replaced by a
Laplace of the same variance (Proposition 1: a non-Gaussian f0 is always distinguishable).

Each posterior SD (vectors by the root mean square of their coordinates' SDs) is set beside
three predictions:

* the paper's rates: with the loss scaling as ``n^-1/2 Delta^-1`` for beta, eta, nu and
  ``n^-1/2 Delta^-2`` for exp(tau) (and tau, by the delta method at a fixed tau*) in the
  non-distinguishable family (section 4 with ``Delta ~ n^-kappa``), and no dependence on Delta in
  a distinguishable one (Proposition 1); no prediction where Proposition 1 does not decide;
* the local asymptotic SD ``sqrt(diag I(theta*)^-1 / n)`` from the Fisher information at the
  truth (:func:`bayescmoe.theory.identifiability.fisher_information`);
* the MLE's standard errors (observed information; NaN for an estimate on the box).

Replications are summarised by the geometric mean of their SDs (the mean of log SD): at small
Delta one replication's posterior can sit in a heavy-tailed mode (an exp(tau) SD of 276 beside
0.02 and 3.4 in the same cell), which would decide an arithmetic mean of three.  Slopes of mean
log SD on log Delta (at each n) and on log n (at each Delta) come with 95% percentile bootstrap
intervals over replications.  A prior-sensitivity run samples the same datasets again
under wide priors (:data:`WIDE_PRIORS`): where the likelihood is informative the posterior SD
does not move; where it flattens the prior takes over and the SD grows with the prior's scale.

Cells are appended to ``cells.jsonl`` in the output directory as they finish; an interrupted
study resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bayescmoe.exceptions import BayescmoeError
from bayescmoe.fit.mle import fit_mle
from bayescmoe.fit.posterior import diagnose, posterior_sd, resolve_sampler, sample_posterior
from bayescmoe.fit.results import _summary_sd
from bayescmoe.model.priors import Prior
from bayescmoe.model.proposition import proposition_1
from bayescmoe.model.simulate import simulate_at
from bayescmoe.model.spec import Spec, load_spec, spec_from_dict
from bayescmoe.studies.executors import run_tasks
from bayescmoe.studies.widening_table import _covers, _geomean, _nanmax, _plain, _slope, _why
from bayescmoe.theory.identifiability import _f0_variance, fisher_information, merge_direction, prompt_at

__all__ = ["WIDE_PRIORS", "WideningStudy", "counterpart", "params_at_delta", "widening", "PAPER_DELTA_SLOPES"]

#: Wide priors for the sensitivity run: four times the weak priors' scales (twice on log nu).
WIDE_PRIORS = {
    "beta": Prior("Normal", mu=0.0, sigma=10.0),
    "tau": Prior("Normal", mu=0.0, sigma=10.0),
    "eta": Prior("Normal", mu=0.0, sigma=10.0),
    "b": Prior("Normal", mu=0.0, sigma=10.0),
    "nu": Prior("LogNormal", mu=0.0, sigma=3.0),
}
#: The paper's exponents of Delta in the non-distinguishable family (loss ~ n^-1/2 Delta^slope).
PAPER_DELTA_SLOPES = {"beta": -1.0, "tau": -2.0, "exp_tau": -2.0, "eta": -1.0, "b": -1.0, "nu": -1.0}
BOOTSTRAP = 2000
FISHER_MC = 200_000


def counterpart(spec: Spec | str, family: str = "laplace") -> Spec:
    """The spec with f0's family replaced by ``family`` of the same variance, schedules removed.

    >>> counterpart("softmax_eta_merging").pretrained.family
    'laplace'
    """
    spec = load_spec(spec)
    variance = _f0_variance(spec)
    data = _fixed(spec).to_dict()
    pre = data["pretrained"]
    if family == "laplace":
        pre["scale"] = float(np.sqrt(variance / 2.0))
    elif family == "normal":
        pre["scale"] = float(variance)
    else:
        raise BayescmoeError(f"counterpart family must be 'laplace' or 'normal', got {family!r}")
    pre["family"] = family
    pre.pop("df", None)
    data["name"] = f"{spec.name}_{family}"
    return spec_from_dict(data, source=f"{spec.name} with a {family} f0 of variance {variance:g}")


def _fixed(spec: Spec) -> Spec:
    """The spec without schedules, its prompt at the pre-trained expert (Delta = 0)."""
    data = spec.to_dict()
    truth = data["truth"]
    truth.pop("schedule", None)
    truth["eta"] = list(spec.pretrained.eta)
    truth["nu"] = _f0_variance(spec)
    if spec.prompt.intercept:
        truth["b"] = spec.pretrained.intercept
    return spec_from_dict(data, source=spec.source)


def params_at_delta(spec: Spec, delta: float, direction: np.ndarray | None = None) -> dict[str, Any]:
    """The truth with the prompt at distance ``delta`` from f0: ``eta0 + delta u``, ``nu`` = f0's variance."""
    return prompt_at(spec, _fixed(spec).truth_at(1), delta, "eta", direction)


def _wide(spec: Spec) -> dict[str, Prior]:
    return {k: v for k, v in WIDE_PRIORS.items() if k in spec.param_names}


def _cell(task: tuple) -> dict[str, Any]:
    """One cell (runs in a worker): simulate at Delta, fit the MLE from the truth, sample the posterior."""
    spec_dict, label, direction, delta, n, rep, prior, settings, study_seed, save = task
    spec = spec_from_dict(spec_dict)
    data_seed, sample_seed = np.random.SeedSequence([study_seed, round(delta * 1e6), n, rep]).generate_state(2)
    params = params_at_delta(spec, delta, np.asarray(direction))
    X, y = simulate_at(spec, params, n, int(data_seed))
    row = {
        "family": label,
        "delta": delta,
        "n": n,
        "rep": rep,
        "prior": prior,
        "seed": int(data_seed),
        "key": settings["key"],
        "error": None,
    }
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the diagnostics are recorded in the row
            fit = fit_mle(spec, X, y, init=params, seed=int(sample_seed))
            idata = sample_posterior(
                spec,
                X,
                y,
                priors=_wide(spec) if prior == "wide" else "weak",
                init=fit,
                draws=settings["draws"],
                tune=settings["tune"],
                chains=settings["chains"],
                sampler=settings["sampler"],
                seed=int(sample_seed),
                check=False,
            )
            diag = diagnose(idata)
        if save:
            Path(save).parent.mkdir(parents=True, exist_ok=True)
            idata.to_netcdf(save, engine="h5netcdf")
    except Exception as err:
        return row | {"error": f"{type(err).__name__}: {err}", "seconds": time.perf_counter() - t0}
    mle_se = _summary_sd(fit.stderr) | {"exp_tau": float(np.exp(fit.params["tau"]) * fit.stderr["tau"])}
    post = idata.posterior
    return row | {
        "seconds": time.perf_counter() - t0,
        "post_sd": posterior_sd(idata),
        "post_mean_tau": float(post["tau"].mean()),
        "post_q_tau": [float(q) for q in np.quantile(post["tau"].values, [0.05, 0.95])],
        "mle_se": {k: (None if not np.isfinite(v) else v) for k, v in mle_se.items()},
        "mle_at_bound": bool(fit.at_bound.any()),
        "rhat_max": max(diag.r_hat.values(), default=None),
        "ess_bulk_min": min(diag.ess_bulk.values()),
        "ess_tail_min": min(diag.ess_tail.values()),
        "divergences": diag.divergences,
    }


@dataclass
class WideningStudy:
    """The cells of a widening study, the Fisher predictions, and their analysis."""

    spec: Spec
    families: dict[str, Spec]
    deltas: list[float]
    ns: list[int]
    reps: int
    settings: dict[str, Any]
    rows: list[dict[str, Any]]
    fisher_sd: dict[tuple[str, float], dict[str, float]] = field(default_factory=dict)
    directory: Path | None = None

    @property
    def parameters(self) -> list[str]:
        """The spec's parameters with ``exp_tau`` after ``tau`` (softmax gating only is studied)."""
        names = list(self.spec.param_names)
        names.insert(names.index("tau") + 1, "exp_tau")
        return names

    def _cells(self, family: str, prior: str = "weak") -> dict[tuple[float, int], list[dict]]:
        out: dict[tuple[float, int], list[dict]] = {}
        for r in self.rows:
            if r["family"] == family and r["prior"] == prior and r["error"] is None:
                out.setdefault((r["delta"], r["n"]), []).append(r)
        return out

    def table(self) -> list[dict[str, Any]]:
        """Per family, Delta and n: posterior SD and MLE SE (geometric means over replications), Fisher SD,
        wide/weak SD ratio, diagnostics."""
        out = []
        for family in self.families:
            cells, wide = self._cells(family), self._cells(family, "wide")
            for (delta, n), rows in sorted(cells.items()):
                entry = {
                    "family": family,
                    "delta": delta,
                    "n": n,
                    "reps": len(rows),
                    "post_sd": {},
                    "mle_se": {},
                    "fisher_sd": {},
                    "wide_ratio": {},
                    "mle_at_bound": sum(r["mle_at_bound"] for r in rows),
                    "rhat_max": _nanmax(r["rhat_max"] for r in rows),
                    "ess_bulk_min": min(r["ess_bulk_min"] for r in rows),
                    "divergences": sum(r["divergences"] for r in rows),
                    "post_mean_tau": float(np.mean([r["post_mean_tau"] for r in rows])),
                }
                fisher = self.fisher_sd.get((family, delta), {})
                for p in self.parameters:
                    entry["post_sd"][p] = _geomean([r["post_sd"][p] for r in rows])
                    se = [r["mle_se"][p] for r in rows if r["mle_se"].get(p) is not None]
                    entry["mle_se"][p] = _geomean(se) if se else None
                    entry["fisher_sd"][p] = fisher[p] / np.sqrt(n) if p in fisher else None
                    pairs = [
                        (w["post_sd"][p], r["post_sd"][p])
                        for w in wide.get((delta, n), [])
                        for r in rows
                        if r["rep"] == w["rep"] and r["post_sd"][p] > 0
                    ]
                    entry["wide_ratio"][p] = float(np.mean([a / b for a, b in pairs])) if pairs else None
                out.append(entry)
        return out

    def slopes(self, against: str = "delta", seed: int = 0) -> list[dict[str, Any]]:
        """Log-log slopes of the posterior SD on Delta (at each n) or on n (at each Delta).

        Each row: family, the fixed value, parameter, the posterior slope with its 95% bootstrap
        interval over replications, and the slopes of the Fisher SD, of the MLE's mean SE and
        the paper's, with ``agrees_paper`` / ``agrees_fisher`` (the interval covers the slope).
        """
        if against not in ("delta", "n"):
            raise ValueError(f"against must be 'delta' or 'n', got {against!r}")
        rng = np.random.default_rng(seed)
        table = self.table()
        out = []
        for family in self.families:
            verdict = proposition_1(self.families[family])
            cells = self._cells(family)
            fixed_values = self.ns if against == "delta" else self.deltas
            for fixed in fixed_values:
                keys = [(d, fixed) for d in self.deltas] if against == "delta" else [(fixed, n) for n in self.ns]
                keys = [k for k in keys if cells.get(k)]
                if len(keys) < 2:
                    continue
                x = np.log([k[0] if against == "delta" else k[1] for k in keys])
                entries = [next(e for e in table if e["family"] == family and (e["delta"], e["n"]) == k) for k in keys]
                for p in self.parameters:
                    samples = [np.log([r["post_sd"][p] for r in cells[k] if r["post_sd"][p] > 0]) for k in keys]
                    if any(s.size == 0 for s in samples):
                        continue
                    slope = float(np.polyfit(x, [s.mean() for s in samples], 1)[0])
                    if min(s.size for s in samples) >= 2:
                        boot = np.array(
                            [
                                np.polyfit(x, [rng.choice(s, s.size).mean() for s in samples], 1)[0]
                                for _ in range(BOOTSTRAP)
                            ]
                        )
                        lo, hi = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
                    else:  # one replication: no spread to resample
                        lo = hi = None
                    fisher = [e["fisher_sd"][p] for e in entries]
                    mle = [e["mle_se"][p] for e in entries]
                    if against == "n":
                        paper = -0.5
                    else:
                        paper = {True: 0.0, False: PAPER_DELTA_SLOPES[p]}.get(verdict)
                    row = {
                        "family": family,
                        "against": against,
                        "fixed": fixed,
                        "parameter": p,
                        "posterior": slope,
                        "ci": (lo, hi),
                        "paper": paper,
                        "fisher": _slope(x, fisher),
                        "mle": _slope(x, mle),
                        "wide_ratio_max": _nanmax(e["wide_ratio"][p] for e in entries),
                        "rhat_max": _nanmax(e["rhat_max"] for e in entries),
                        "tau_mean_min": min(e["post_mean_tau"] for e in entries),
                        "tau_true": float(self.families[family].truth_at(1)["tau"]),
                        "mle_at_bound": sum(e["mle_at_bound"] for e in entries),
                    }
                    row["agrees_paper"] = _covers(lo, hi, paper)
                    row["agrees_fisher"] = _covers(lo, hi, row["fisher"])
                    row["why"] = _why(row)
                    out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON values (NaN and infinities become None)."""
        return _plain(
            {
                "spec": self.spec.name,
                "families": {k: s.pretrained.family for k, s in self.families.items()},
                "deltas": self.deltas,
                "ns": self.ns,
                "reps": self.reps,
                "settings": self.settings,
                "table": self.table(),
                "slopes_delta": self.slopes("delta"),
                "slopes_n": self.slopes("n"),
            }
        )


def _settings_key(spec: Spec, families: dict[str, Spec], settings: dict[str, Any], seed: int) -> str:
    payload = json.dumps(
        [
            spec.digest(),
            sorted((k, s.digest()) for k, s in families.items()),
            {k: v for k, v in settings.items() if k != "key"},
            seed,
        ],
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def widening(
    spec: Spec | str,
    deltas: Sequence[float],
    ns: Sequence[int],
    reps: int,
    *,
    counterpart_family: str | None = "laplace",
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    sampler: str = "pymc",
    sensitivity: bool = True,
    seed: int = 0,
    directory: str | Path | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    fisher_mc: int = FISHER_MC,
) -> WideningStudy:
    """Run (or resume) a widening study; see the module docstring.

    Parameters
    ----------
    spec : Spec or str
        The non-distinguishable setting (normal f0 with h0 = h), e.g. ``"softmax_eta_merging"``;
        its schedules are ignored, Delta is set directly.
    deltas, ns : sequences
        The grid of distances and of sample sizes (all pairs are run).
    reps : int
        Datasets per cell.
    counterpart_family : "laplace", "normal" or None
        Also run the spec with f0 of this family and the same variance (None: only the spec).
    draws, tune, chains, sampler :
        Passed to :func:`bayescmoe.sample_posterior` (priors: the weakly informative defaults).
    sensitivity : bool
        Also sample replication 0 of every cell at the smallest n under :data:`WIDE_PRIORS`.
    directory : path, optional
        Where ``cells.jsonl`` (resumable) and the posteriors of replication 0 at the largest n
        (``posterior/<family>_delta<D>_n<N>.nc``) are written.
    workers, scheduler :
        Local worker processes or a Dask scheduler's address (:mod:`bayescmoe.studies.executors`).
    """
    spec = load_spec(spec).require_one_prompt("the widening study")
    deltas = sorted({float(d) for d in deltas})
    ns = sorted({int(n) for n in ns})
    if len(deltas) < 2 or deltas[0] <= 0:
        raise BayescmoeError(f"need at least two positive Delta values, got {deltas}")
    if len(ns) < 1 or ns[0] < 10:
        raise BayescmoeError(f"need sample sizes of at least 10, got {ns}")
    if not (isinstance(reps, int) and reps >= 1):
        raise BayescmoeError(f"reps must be a positive integer, got {reps!r}")
    if spec.gating != "softmax":
        raise BayescmoeError(f"the widening study is for softmax gating; {spec.name} has {spec.gating} gating")
    if any(s.parameter == "tau" for s in spec.schedules):
        raise BayescmoeError(
            f"{spec.name} lets its gate vanish (a tau schedule); the widening study needs a fixed gate: "
            "use a spec with a fixed tau, such as softmax_eta_merging"
        )
    resolve_sampler(sampler)
    families = {spec.pretrained.family: _fixed(spec)}
    if counterpart_family and counterpart_family != spec.pretrained.family:
        families[counterpart_family] = counterpart(spec, counterpart_family)
    settings = {"draws": draws, "tune": tune, "chains": chains, "sampler": sampler}
    settings["key"] = _settings_key(spec, families, settings, seed)
    directory = Path(directory) if directory is not None else None
    wanted = [
        (label, delta, n, rep, prior)
        for label in families
        for delta in deltas
        for n in ns
        for rep in range(reps)
        for prior in (("weak", "wide") if sensitivity and n == ns[0] and rep == 0 else ("weak",))
    ]
    keys = set(wanted)
    done = {k: v for k, v in _load(directory, settings["key"]).items() if k in keys}
    direction = merge_direction(spec).tolist()
    tasks = []
    for label, delta, n, rep, prior in wanted:
        if (label, delta, n, rep, prior) in done:
            continue
        save = None
        if directory is not None and rep == 0 and n == ns[-1] and prior == "weak":
            save = str(directory / "posterior" / f"{label}_delta{delta:g}_n{n}.nc")
        tasks.append((families[label].to_dict(), label, direction, delta, n, rep, prior, settings, seed, save))
    rows = list(done.values())
    total = len(rows) + len(tasks)
    sink = None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "cells.jsonl"
        torn = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
        sink = path.open("a")
        if torn:  # an interrupted write: end its line so that the next row stays whole
            sink.write("\n")
    try:
        for row in run_tasks(_cell, tasks, workers=workers, scheduler=scheduler):
            rows.append(row)
            if sink is not None:
                sink.write(json.dumps(row) + "\n")
                sink.flush()
            if progress is not None:
                progress(f"{row['family']} Delta={row['delta']:g} n={row['n']}", len(rows), total)
    finally:
        if sink is not None:
            sink.close()
    study = WideningStudy(spec, families, deltas, ns, reps, settings, rows, directory=directory)
    for label, fam_spec in families.items():
        for delta in deltas:
            info = fisher_information(
                fam_spec, params_at_delta(fam_spec, delta, np.asarray(direction)), n_mc=fisher_mc, seed=seed
            )
            try:
                study.fisher_sd[(label, delta)] = _summary_sd(info.asymptotic_sd(1))
            except np.linalg.LinAlgError:  # a singular information: no local prediction at this Delta
                study.fisher_sd[(label, delta)] = {}
    return study


def _load(directory: Path | None, key: str) -> dict[tuple, dict[str, Any]]:
    """The finished cells of an earlier run with the same settings (a torn last line is skipped)."""
    if directory is None or not (directory / "cells.jsonl").exists():
        return {}
    done = {}
    for line in (directory / "cells.jsonl").read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("key") == key and row.get("error") is None:
            done[(row["family"], row["delta"], row["n"], row["rep"], row["prior"])] = row
    return done
