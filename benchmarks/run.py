"""The benchmark suite: fit_mle against its peers, cold and warm starts, throughput, memory.

    python benchmarks/run.py                 # everything, about 25 minutes on 2 cores
    python benchmarks/run.py --only compare --ns 1000,10000 --repeats 3

Sections (results in benchmarks/results/<section>.json, tables on stdout):

compare     On the same data (simulate(spec, n, seed=0)) and from the same start (the
            truth at n perturbed by N(0, 0.1^2), seeded), each method's wall time (median
            over --repeats calls, methods interleaved) and the log-likelihood it reached,
            scored by bayescmoe.loglik: fit_mle; pm.find_MAP on the model as a PyMC user
            writes it (pm.Mixture, flat priors, defaults); a hand-written numpy/scipy
            L-BFGS-B with an analytic gradient (benchmarks/numpy_baseline.py); fit_em.
            A method reached "the same optimum" if its log-likelihood is within 1e-6
            relative of fit_mle's; the table says when it did not, and in which direction.
cold        A fresh process, from interpreter start to the first fitted result, with an
            empty pytensor cache (C modules and Numba's) and again with the cache it left.
throughput  Fits per minute over a paper-scale grid (--grid-n values of n log-spaced over
            1e2..1e5, --grid-reps replications, MLE started at the truth as the literature
            does), in worker processes with one thread each.
memory      Peak resident memory (/usr/bin/time -v) of a process that simulates and fits
            n = 1e6 observations, and of one that only imports bayescmoe.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from multiprocessing import get_context
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy_baseline  # noqa: E402

SPECS = ("softmax_distinguishable", "softmax_eta_merging")
SAME = 1e-6


# -- methods: (spec, X, y, start) -> params -------------------------------------------------


def start_point(spec, n, seed=0):
    """The truth at n perturbed by N(0, 0.1^2), clipped into the box."""
    truth = spec.truth_at(n)
    rng = np.random.default_rng([seed, n])
    theta = spec.layout.pack(truth) + rng.normal(scale=0.1, size=spec.n_params)
    lower, upper = spec.bounds_arrays()
    return spec.layout.unpack(np.clip(theta, lower, upper))


def run_fit_mle(spec, X, y, start):
    import bayescmoe as bc

    return bc.fit_mle(spec, X, y, init=start).params


def run_fit_em(spec, X, y, start):
    import bayescmoe as bc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bc.fit_em(spec, X, y, init=start).params


def run_numpy(spec, X, y, start):
    return numpy_baseline.fit(spec, X, y, start)[0]


def pymc_user_model(spec, X, y):
    """The contaminated MoE as a PyMC user would write it: pm.Mixture, flat priors."""
    import pymc as pm
    import pytensor.tensor as pt

    from bayescmoe.model.experts import get_expert
    from bayescmoe.model.families import get_family

    pre = spec.pretrained
    with pm.Model(coords={"covariate": list(spec.covariate_names)}) as model:
        Xd = pm.Data("X", X)
        beta = pm.Flat("beta", dims="covariate")
        tau = pm.Flat("tau")
        eta = pm.Flat("eta", dims="covariate")
        nu = pm.HalfFlat("nu")
        g = pm.math.sigmoid(Xd @ beta + tau)
        mu0 = get_expert(pre.expert)(Xd @ np.array(pre.eta) + pre.intercept)
        comps = [
            get_family(pre.family).dist(mu0, pre.scale, pre.df),
            pm.Normal.dist(mu=get_expert(spec.prompt.expert)(Xd @ eta), sigma=pt.sqrt(nu)),
        ]
        pm.Mixture("y", w=pt.stack([1 - g, g], axis=-1), comp_dists=comps, observed=y)
    return model


def run_find_map(spec, X, y, start):
    import pymc as pm

    model = pymc_user_model(spec, X, y)
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        point = pm.find_MAP(
            initvals={k: np.asarray(v) for k, v in start.items()},
            progressbar=False,
            return_inferencedata=False,
            jitter=False,
        )
    return {k: point[k] for k in spec.param_names}


METHODS = {"fit_mle": run_fit_mle, "find_MAP": run_find_map, "numpy L-BFGS-B": run_numpy, "fit_em": run_fit_em}


# -- sections -----------------------------------------------------------------------------------


def compare(ns, repeats, methods):
    import bayescmoe as bc

    rows = []
    for name in SPECS:
        spec = bc.load_spec(name)
        for n in ns:
            X, y, _ = bc.simulate(spec, n, seed=0)
            start = start_point(spec, n)
            times = {m: [] for m in methods}
            params = {}
            for m in methods:  # a first, untimed call: compile and warm every cache
                params[m] = METHODS[m](spec, X, y, start)
            for _ in range(repeats):
                for m in methods:
                    t0 = time.perf_counter()
                    params[m] = METHODS[m](spec, X, y, start)
                    times[m].append(time.perf_counter() - t0)
            row = {"spec": name, "n": n, "methods": {}}
            for m in methods:
                row["methods"][m] = {
                    "median_s": statistics.median(times[m]),
                    "times_s": times[m],
                    "loglik": bc.loglik(spec, X, y, params[m]),
                }
            rows.append(row)
            print(
                f"{name} n={n}: " + ", ".join(f"{m} {row['methods'][m]['median_s']:.3f} s" for m in methods), flush=True
            )
    return rows


COLD_SNIPPET = """
import time, sys, warnings
t0 = time.perf_counter()
sys.path.insert(0, {here!r})
import numpy as np
import bayescmoe as bc
from run import start_point, METHODS
spec = bc.load_spec({spec!r})
X, y, _ = bc.simulate(spec, {n}, seed=0)
params = METHODS[{method!r}](spec, X, y, start_point(spec, {n}))
print(time.perf_counter() - t0)
"""


def cold(n):
    rows = []
    for name in SPECS:
        for method in ("fit_mle", "find_MAP"):
            with tempfile.TemporaryDirectory() as cache:
                env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={cache}")
                code = COLD_SNIPPET.format(here=str(HERE), spec=name, n=n, method=method)
                row = {"spec": name, "n": n, "method": method}
                for state in ("cold", "warm"):
                    t0 = time.perf_counter()
                    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
                    if out.returncode != 0:
                        raise RuntimeError(out.stderr)
                    row[f"{state}_process_s"] = time.perf_counter() - t0
                    row[f"{state}_in_process_s"] = float(out.stdout.split()[-1])
            rows.append(row)
            print(
                f"{name} {method}: cold {row['cold_process_s']:.1f} s, warm cache {row['warm_process_s']:.1f} s",
                flush=True,
            )
    return rows


def _grid_fit(task):
    name, n, rep = task
    import bayescmoe as bc

    spec = bc.load_spec(name)
    X, y, _ = bc.simulate(spec, n, seed=1_000_003 * rep + n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bc.fit_mle(spec, X, y, init="truth")
    return fit.converged, fit.seconds


def _single_thread():
    os.environ["OMP_NUM_THREADS"] = "1"  # before libgomp loads in this worker


def throughput(grid_n, grid_reps, workers):
    ns = sorted(set(np.unique(np.round(np.logspace(2, 5, grid_n)).astype(int)).tolist()))
    rows = []
    for name in SPECS:
        tasks = [(name, n, rep) for rep in range(grid_reps) for n in ns]
        ctx = get_context("spawn")
        with ctx.Pool(workers, initializer=_single_thread) as pool:
            pool.map(_grid_fit, [(name, 1000, 0)] * workers)  # compile / load the kernels in every worker
            t0 = time.perf_counter()
            results = pool.map(_grid_fit, tasks, chunksize=4)
            wall = time.perf_counter() - t0
        converged = sum(c for c, _ in results)
        rows.append(
            {
                "spec": name,
                "fits": len(tasks),
                "n_values": len(ns),
                "reps": grid_reps,
                "workers": workers,
                "wall_s": wall,
                "fits_per_minute": 60 * len(tasks) / wall,
                "converged": converged,
            }
        )
        print(
            f"{name}: {len(tasks)} fits in {wall:.1f} s = {60 * len(tasks) / wall:.0f} fits/min "
            f"({converged} converged)",
            flush=True,
        )
    return rows


MEMORY_SNIPPET = """
import sys
sys.path.insert(0, {here!r})
import bayescmoe as bc
from run import start_point
if {n}:
    spec = bc.load_spec("softmax_eta_merging")
    X, y, _ = bc.simulate(spec, {n}, seed=0)
    fit = bc.fit_mle(spec, X, y, init=start_point(spec, {n}))
    print("fit_seconds", fit.seconds, "converged", fit.converged)
"""


def memory(n):
    rows = []
    for size in (0, n):
        code = MEMORY_SNIPPET.format(here=str(HERE), n=size)
        out = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", code], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
        fit_s = re.search(r"fit_seconds (\S+)", out.stdout)
        rows.append({"n": size, "peak_rss_mb": peak_kb / 1024, "fit_seconds": float(fit_s.group(1)) if fit_s else None})
        print(f"n = {size}: peak RSS {peak_kb / 1024:.0f} MB", flush=True)
    return rows


# -- reporting ------------------------------------------------------------------------------------


def machine():
    import pymc
    import pytensor

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "pymc": pymc.__version__,
        "pytensor": pytensor.__version__,
        "numpy": np.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def compare_table(rows) -> str:
    methods = list(rows[0]["methods"])
    others = [m for m in methods if m != "fit_mle"]
    head = ["spec", "n", "fit_mle (s)"] + [f"{m} (s)" for m in others] + [f"{m} / fit_mle" for m in others]
    head += [f"{m}: same optimum?" for m in others]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        ours = row["methods"]["fit_mle"]
        cells = [row["spec"], str(row["n"]), f"{ours['median_s']:.3f}"]
        cells += [f"{row['methods'][m]['median_s']:.3f}" for m in others]
        cells += [f"{row['methods'][m]['median_s'] / ours['median_s']:.1f}x" for m in others]
        for m in others:
            gap = (ours["loglik"] - row["methods"][m]["loglik"]) / abs(ours["loglik"])
            verdict = "yes" if abs(gap) <= SAME else ("no: fit_mle higher" if gap > 0 else "NO: fit_mle LOWER")
            cells.append(f"{verdict} ({gap:+.1e})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["compare", "cold", "throughput", "memory"], action="append")
    parser.add_argument("--ns", default="1000,10000,100000", help="sample sizes of the comparison")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per method (median reported)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ", ".join(METHODS))
    parser.add_argument("--grid-n", type=int, default=200, help="n values of the throughput grid")
    parser.add_argument("--grid-reps", type=int, default=40, help="replications of the throughput grid")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--memory-n", type=int, default=1_000_000)
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    sections = args.only or ["compare", "cold", "throughput", "memory"]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    info = {"machine": machine(), "command": " ".join([Path(sys.executable).name] + sys.argv)}
    for section in sections:
        print(f"== {section}", flush=True)
        if section == "compare":
            rows = compare([int(v) for v in args.ns.split(",")], args.repeats, args.methods.split(","))
            print(compare_table(rows))
        elif section == "cold":
            rows = cold(10_000)
        elif section == "throughput":
            rows = throughput(args.grid_n, args.grid_reps, args.workers)
        else:
            rows = memory(args.memory_n)
        with open(Path(args.out) / f"{section}.json", "w") as fh:
            json.dump(info | {"rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
