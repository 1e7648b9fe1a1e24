"""Is the default fit the global optimum on real data?  (issue 19: "measured, not assumed")

For every cell (a real dataset of benchmarks/optima_data.py, K = 1, 2, 3 prompts; the plain softmax-gated MoE
on every dataset, and a frozen model fitted on a source domain and adapted to the target for those with a
natural split), the log-likelihood of

* the **default** fit: ``bc.ContaminatedMoE(prompts=K)`` (plain) or ``bc.ContaminatedMoE(pretrained=model,
  scale=s, prompts=K)`` (frozen; a HistGradientBoostingRegressor fitted on 80% of the source, its variance the
  mean squared residual on the rest), ``random_state=0``, timed warm (a first fit compiles the kernels);
* the **best of 500 random starts** (:func:`bayescmoe.fit.multistart.random_starts`, in the same standardised units and
  box), every one run to convergence (up to 200 projected Newton steps, all starts at once; above 5,000 rows on
  a 5,000-row subsample), the best polished to convergence on all rows until 20 of them are not spikes,
  and of those the best that is not a spike (:func:`bayescmoe.fit.spikes.spikes`, as the estimator chooses; the best spike is recorded beside it);
* **R flexmix**, ``stepFlexmix(nrep = 100)`` with ``FLXMRglm`` + ``FLXPmultinom`` (plain cells; the stored
  results of benchmarks/flexmix_optima.py, 20 starts where the data are large);
* the largest log-likelihood among **NUTS posterior draws** (2 chains x 500 draws, from the default fit) that
  are inside the constrained space and not spikes (a draw's prompt below the variance floor, or a spike of
  :func:`bayescmoe.fit.spikes.spikes`, is not a candidate for the constrained MLE);
* the default of the code before issue 19 (``--before PATH``: a checkout of it; its time and its optimum);
* the **default with other seeds** (``--seeds N``: ``random_state`` = 1..N, the estimator's own choice of optimum,
  spikes excluded as it excludes them; added on 2026-12-08 and run on the 30 cells of tests/data).

The gap of the default to the best of them all, absolute and relative, and the times, are written to
benchmarks/results/optima/optima.json (one entry per cell, resumed when run again) and printed.

    python benchmarks/optima.py [--only NAME] [--kind plain|frozen] [--K 1,2,3] [--before /tmp/old]
    python benchmarks/optima.py --table       # the table from the stored results
    python benchmarks/optima.py --refresh-default   # refit only the default of the stored cells
    python benchmarks/optima.py --seeds 10 --only computers --kind frozen   # the default with random_state 1..10
    python benchmarks/optima.py --export-tests      # the cells of <= 1,000 rows into tests/data
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from optima_data import CELLS, SPLITS, load, load_split  # noqa: E402

import bayescmoe as bc  # noqa: E402
from bayescmoe.fit import mle, multistart  # noqa: E402
from bayescmoe.fit import problem as fit_problem  # noqa: E402
from bayescmoe.fit import spikes as spike_rules  # noqa: E402
from bayescmoe.fit.optimize import newton_box, newton_box_many  # noqa: E402

OUT = HERE / "results" / "optima" / "optima.json"
FLEXMIX = HERE / "results" / "optima" / "flexmix.json"
RANDOM_STARTS, BATCH, SUBSAMPLE, POLISHED = 500, 50, 5000, 20


def cell_data(name: str, kind: str):
    """X, y and (frozen cells) the frozen model's predictions and variance on the target."""
    if kind == "plain":
        X, y, _ = load(name)
        return X, y, None, None
    Xs, ys, Xt, yt, _ = load_split(name)
    from sklearn.ensemble import HistGradientBoostingRegressor

    task = bc.adaptation_task(bc.OneThread(HistGradientBoostingRegressor(random_state=0)), Xs, ys, Xt, yt)
    return Xt, yt, task.frozen.predict(Xt), task.scale


def estimator(kind: str, K: int, mean0, scale, random_state: int = 0, **kwargs):
    if kind == "plain":
        return bc.ContaminatedMoE(prompts=K, random_state=random_state, **kwargs)
    return bc.ContaminatedMoE(pretrained=Lookup(mean0), scale=scale, prompts=K, random_state=random_state, **kwargs)


class Lookup:
    """A frozen model whose predictions at the cell's rows are stored (the rows are always the same)."""

    def __init__(self, values):
        self.values = np.asarray(values, float)

    def predict(self, X):
        return self.values[: len(X)] if len(X) == len(self.values) else self.values[np.arange(len(X))]


#: The structures (kind, K, d) whose kernels this process has compiled: a first fit compiles them, so that the
#: timed fits are warm.
_WARM: set[tuple] = set()


def default_fit(kind, K, X, y, mean0, scale, random_state: int = 0):
    """The default fit with ``random_state``, timed warm, and the texts of its fit warnings."""
    if (kind, K, X.shape[1]) not in _WARM:
        estimator(kind, K, mean0, scale).fit(X, y)  # compile (the kernels of this structure)
        _WARM.add((kind, K, X.shape[1]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        est = estimator(kind, K, mean0, scale, random_state=random_state).fit(X, y)
        seconds = time.perf_counter() - t0
    texts = [f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, mle._FIT_WARNINGS)]
    return est, seconds, texts


def best_of_random(est, X, y, mean0, count=RANDOM_STARTS, seed=1):
    """The best of ``count`` random starts, each run to convergence, in the default fit's units and box."""
    fit = est.fit_
    standard, units = fit.standard.spec, fit.units
    Xs = units.covariates(X)
    m0 = None if mean0 is None else units.frozen_mean(mean0)
    s0 = None
    if standard.pretrained is not None:
        s0 = units.frozen_scale(standard.pretrained.family, np.full(len(y), est.spec_.pretrained.scale))
    data = fit_problem.Data(Xs, units.response(y), m0, s0)
    rng = np.random.default_rng(seed)
    starts = np.array(multistart.random_starts(standard, data.y, count, rng))
    lower, upper = standard.bounds_arrays()
    t0 = time.perf_counter()
    level = data.rows(rng.permutation(len(y))[:SUBSAMPLE]) if len(y) > SUBSAMPLE else data
    problem = fit_problem._Problem(level.likelihood(standard), None)
    ends, values = [], []
    for i in range(0, count, BATCH):
        Xb, Fb = newton_box_many(problem.fgh_many, problem.f_many, starts[i : i + BATCH], lower, upper, iterations=200)
        ends.append(Xb), values.append(Fb)
    ends, values = np.vstack(ends), np.concatenate(values)
    order = np.argsort(np.where(np.isfinite(values), values, np.inf))
    full = fit_problem._Problem(data.likelihood(standard), None)
    runs, kept = [], 0
    for i in order:  # polish in order until POLISHED of them are not spikes (the estimator's choice)
        if not np.isfinite(values[i]):
            break
        runs.append(newton_box(full.fgh, full.f, ends[i], lower, upper, maxiter=500))
        kept += not spike_rules.spikes(standard, full.lik, runs[-1].x)
        if kept >= POLISHED:
            break
    best, spike = spike_rules._best(runs, standard, full.lik)
    to_user = lambda r: float(units.loglik(-r.fun * len(y), len(y)))  # noqa: E731
    reached = [to_user(r) for r in runs]
    return {"loglik": to_user(best), "seconds": time.perf_counter() - t0,
            "spike_loglik": None if spike is None else to_user(spike),
            "polished_at_best": int(np.sum(np.array(reached) >= to_user(best) - 1e-6 * abs(to_user(best))))}  # fmt: skip


def nuts_max(est, X, y, draws):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.sample_posterior(X, y, draws=draws, tune=draws, chains=2, sampler="pymc", check=False, progressbar=False)
        rows = est.posterior_loglik(X, y)
        totals = rows.sum(axis=1)
        # the largest draw that is not a spike (a draw below the variance floor is outside the constrained space)
        model, thetas = est._model, est._posterior_draws()
        lik = est._likelihood(X, y, None, None)
        floor = model.spec.bounds["nu"][0]
        best = None
        for i in np.argsort(-totals)[:200]:
            params = model.spec.layout.unpack(thetas[i])
            if np.all(np.asarray(params["nu"]) >= floor) and not spike_rules.spikes(model.spec, lik, thetas[i]):
                best = float(totals[i])
                break
    return {"loglik": best, "max_any_draw": float(totals.max()), "seconds": time.perf_counter() - t0, "draws": draws}


BEFORE = r"""
import sys, json, time, warnings
import numpy as np
sys.path.insert(0, sys.argv[1])
import bayescmoe as bc
warnings.simplefilter("ignore")
d = np.load(sys.argv[2])
X, y, K = d["X"], d["y"], int(d["K"])
class Lookup:
    def __init__(self, v): self.v = v
    def predict(self, X): return self.v
kw = {} if "mean0" not in d else {"pretrained": Lookup(d["mean0"]), "scale": float(d["scale"])}
bc.ContaminatedMoE(prompts=K, random_state=0, **kw).fit(X, y)
t0 = time.perf_counter(); est = bc.ContaminatedMoE(prompts=K, random_state=0, **kw).fit(X, y)
print(json.dumps({"loglik": est.fit_.loglik, "seconds": time.perf_counter() - t0}))
"""


def before_fit(path, X, y, K, mean0, scale):
    """The default of the code at ``path`` (before issue 19), in a subprocess: its optimum and warm time."""
    with tempfile.TemporaryDirectory() as tmp:
        arrays = {"X": X, "y": y, "K": K} | ({} if mean0 is None else {"mean0": mean0, "scale": scale})
        np.savez(Path(tmp) / "cell.npz", **arrays)
        script = Path(tmp) / "before.py"
        script.write_text(BEFORE)
        env = dict(os.environ, PYTHONPATH=str(path))
        out = subprocess.run([sys.executable, str(script), str(path), str(Path(tmp) / "cell.npz")], env=env,
                             capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def flexmix_loglik(name, K):
    if not FLEXMIX.exists():
        return None
    cells = [c for c in json.loads(FLEXMIX.read_text())["cells"] if c["dataset"] == name and c["K"] == K]
    cells = [c for c in cells if c["minprior"] == 0.0] or cells
    if not cells:
        return None
    best = max(cells, key=lambda c: c["loglik"])
    return {"loglik": best["loglik"], "nrep": best["nrep"], "seconds": best["seconds"],
            "spikes": best["best"].get("spikes", [])}  # fmt: skip


def run_cell(name, kind, K, before):
    X, y, mean0, scale = cell_data(name, kind)
    est, seconds, texts = default_fit(kind, K, X, y, mean0, scale)
    row = {"dataset": name, "kind": kind, "K": K, "n": len(y), "d": X.shape[1],
           "default": {"loglik": est.fit_.loglik, "seconds": seconds, "n_starts": est.fit_.n_starts,
                       "converged": est.fit_.converged, "warnings": texts}}  # fmt: skip
    row["random500"] = best_of_random(est, X, y, mean0)
    row["flexmix"] = flexmix_loglik(name, K) if kind == "plain" else None
    row["nuts"] = nuts_max(est, X, y, 500 if len(y) <= 5000 else 200)
    if before:
        row["before"] = before_fit(before, X, y, K, mean0, scale)
    return score(row)


def refresh_default(row):
    """The stored cell with its default fit run again (the references do not depend on the default's starts:
    the random starts, flexmix and NUTS run in the same units and box)."""
    X, y, mean0, scale = cell_data(row["dataset"], row["kind"])
    est, seconds, texts = default_fit(row["kind"], row["K"], X, y, mean0, scale)
    earlier = max(row["default"]["loglik"], (row.get("earlier_default") or {}).get("loglik", -np.inf))
    if earlier > est.fit_.loglik:  # an optimum a default once reached stays known (a refit cannot unlearn it)
        row["earlier_default"] = {"loglik": earlier}
    row["default"] = {"loglik": est.fit_.loglik, "seconds": seconds, "n_starts": est.fit_.n_starts,
                      "converged": est.fit_.converged, "warnings": texts}  # fmt: skip
    return score(row)


def other_seeds(row, count):
    """The default fit with ``random_state`` = 1..count: the best of their optima (each the estimator's choice,
    not a spike), its seed, and every seed's log-likelihood and convergence."""
    X, y, mean0, scale = cell_data(row["dataset"], row["kind"])
    runs = []
    for seed in range(1, count + 1):
        est, seconds, texts = default_fit(row["kind"], row["K"], X, y, mean0, scale, random_state=seed)
        runs.append({"random_state": seed, "loglik": est.fit_.loglik, "converged": est.fit_.converged,
                     "seconds": seconds, "warnings": texts})  # fmt: skip
    best = max(runs, key=lambda r: r["loglik"])
    row["seeds"] = {"loglik": best["loglik"], "random_state": best["random_state"], "runs": runs}
    return score(row)


#: The references a cell's default is measured against (each a dict with its "loglik", or None).
REFERENCES = ("random500", "flexmix", "nuts", "earlier_default", "seeds")


def score(row):
    """The best of every reference (a flexmix optimum with a spike excluded, as the estimator excludes them) and
    the default's gap to it."""
    refs = [row[k]["loglik"] for k in REFERENCES if k != "flexmix" and row.get(k) and row[k]["loglik"] is not None]
    if row.get("flexmix") and not row["flexmix"].get("spikes"):
        refs.append(row["flexmix"]["loglik"])
    row["best"] = max([row["default"]["loglik"], *refs])
    row["gap"] = row["best"] - row["default"]["loglik"]
    row["relative_gap"] = row["gap"] / abs(row["best"])
    return row


def table(rows):
    head = (f"{'dataset':<10} {'kind':<6} {'K':>1} {'n':>6} {'default':>13} {'500 random':>13} {'flexmix':>13} "
            f"{'NUTS max':>13} {'seeds 1..N':>13} {'rel. gap':>9} {'time':>6} {'before':>13} {'time':>6} {'ratio':>5}")  # fmt: skip
    lines = [head]
    fmt = lambda v: f"{v:13.3f}" if v is not None else f"{'-':>13}"  # noqa: E731
    for r in rows:
        flex = r["flexmix"]["loglik"] if r.get("flexmix") else None
        before = r.get("before") or {}
        ratio = r["default"]["seconds"] / before["seconds"] if before else None
        lines.append(
            f"{r['dataset']:<10} {r['kind']:<6} {r['K']:>1} {r['n']:>6} {fmt(r['default']['loglik'])} "
            f"{fmt(r['random500']['loglik'])} {fmt(flex)} {fmt(r['nuts']['loglik'])} "
            f"{fmt((r.get('seeds') or {}).get('loglik'))} {r['relative_gap']:9.1e} "
            f"{r['default']['seconds']:6.2f} {fmt(before.get('loglik'))} "
            f"{before.get('seconds', float('nan')):6.2f} {ratio if ratio is not None else float('nan'):5.2f}"
        )
    return "\n".join(lines)


TESTS = HERE.parent / "tests" / "data"
#: Cells up to this many rows are copied into tests/data, with their best optimum known, for the test suite.
TEST_ROWS = 1000


def export_tests(rows) -> None:
    """Small copies of the cells' data and their best known optima, for tests/model/test_units.py (no R needed)."""
    cells = []
    for r in sorted(rows, key=lambda r: (r["dataset"], r["kind"], r["K"])):
        if r["n"] > TEST_ROWS:
            continue
        X, y, mean0, scale = cell_data(r["dataset"], r["kind"])
        name = f"optima_{r['dataset']}_{r['kind']}.csv"
        columns = [f"x{j + 1}" for j in range(X.shape[1])] + ["y"] + (["f0_mean"] if mean0 is not None else [])
        values = np.column_stack([X, y] + ([mean0] if mean0 is not None else []))
        np.savetxt(TESTS / name, values, delimiter=",", header=",".join(columns), comments="", fmt="%.17g")
        cells.append({"dataset": r["dataset"], "kind": r["kind"], "K": r["K"], "n": r["n"], "d": r["d"], "file": name,
                      "scale": scale, "best": r["best"], "default": r["default"]["loglik"],
                      "default_converged": r["default"]["converged"], "relative_gap": r["relative_gap"],
                      "sources": {k: (r.get(k) or {}).get("loglik")
                                  for k in REFERENCES}})  # fmt: skip
    (TESTS / "optima.json").write_text(json.dumps({"command": "python benchmarks/optima.py --export-tests",
                                                   "cells": cells}, indent=1))  # fmt: skip
    print(f"wrote {len(cells)} cells to {TESTS / 'optima.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="datasets (default: all)")
    parser.add_argument("--kind", choices=["plain", "frozen"], action="append", help="cells (default: both)")
    parser.add_argument("--K", default="1,2,3", help="numbers of prompts (default 1,2,3)")
    parser.add_argument("--before", help="a checkout of the code before issue 19, for its time and optimum")
    parser.add_argument("--table", action="store_true", help="print the stored table and stop")
    parser.add_argument("--refresh-default", action="store_true",
                        help="refit the default of stored cells (after a change to it), keeping their references")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=0,
                        help="also fit the default with random_state 1..N on the chosen stored cells (a reference)")  # fmt: skip
    parser.add_argument("--export-tests", action="store_true", help="copy the small cells into tests/data")
    args = parser.parse_args()
    stored = json.loads(OUT.read_text()) if OUT.exists() else {"cells": []}
    done = {(r["dataset"], r["kind"], r["K"]): r for r in stored["cells"]}
    if not args.table:
        stored["machine"] = (
            f"{platform.machine()}, {platform.system()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        stored["command"] = "python " + " ".join(sys.argv)
        for name in args.only or list(CELLS):
            for kind in args.kind or ["plain", "frozen"]:
                if kind == "frozen" and name not in SPLITS:
                    continue
                for K in (int(k) for k in args.K.split(",")):
                    t0 = time.perf_counter()
                    if (name, kind, K) in done:
                        if not (args.refresh_default or args.seeds):
                            continue
                        row = done[(name, kind, K)]
                        row = refresh_default(row) if args.refresh_default else row
                    else:
                        row = run_cell(name, kind, K, args.before)
                    row = other_seeds(row, args.seeds) if args.seeds else row
                    done[(name, kind, K)] = row
                    stored["cells"] = list(done.values())
                    OUT.write_text(json.dumps(stored, indent=1))
                    print(f"{name} {kind} K={K}: gap {row['gap']:.4g} ({time.perf_counter() - t0:.0f} s)", flush=True)
    for row in done.values():  # flexmix's results may have arrived since the cell ran
        if row["kind"] == "plain":
            row.update(score(dict(row, flexmix=flexmix_loglik(row["dataset"], row["K"]))))
    stored["cells"] = list(done.values())
    if done:
        OUT.write_text(json.dumps(stored, indent=1))
    print(table(sorted(done.values(), key=lambda r: (r["kind"], list(CELLS).index(r["dataset"]), r["K"]))))
    if args.export_tests:
        export_tests(done.values())


if __name__ == "__main__":
    main()
