"""Wall time of `fit_mle` against `pm.find_MAP` on the same model, warm and cold.

    python benchmarks/bench_fit.py                      # everything (about 20 minutes on 2 cores)
    python benchmarks/bench_fit.py --skip-cold --ns 1000,10000

The PyMC side is the model as a PyMC user would write it: flat priors, the
mixture as ``pm.Mixture`` with a sigmoid gate, ``pm.find_MAP`` with its defaults
(L-BFGS-B, pytensor's default linker).  Both start from the same point: the
truth at n perturbed by N(0, 0.1^2) noise (seeded).  Warm times are medians over
``--repeats`` calls in one process after a first call; cold times are the wall
time of a fresh process with an empty pytensor cache, from interpreter start to
the first fitted result.  Each method's optimum is scored with the same
log-likelihood (bayescmoe.loglik) so that the table also shows whether both
reached the same optimum.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

SPECS = ("softmax_distinguishable", "softmax_eta_merging")


def start_point(spec, n, seed=0):
    truth = spec.truth_at(n)
    rng = np.random.default_rng([seed, n])
    theta = spec.layout.pack(truth) + rng.normal(scale=0.1, size=spec.n_params)
    lower, upper = spec.bounds_arrays()
    return spec.layout.unpack(np.clip(theta, lower, upper))


def pymc_user_model(spec, X, y):
    """The contaminated MoE as a PyMC user would write it: pm.Mixture, flat priors."""
    import pymc as pm
    import pytensor.tensor as pt

    from bayescmoe.experts import get_expert
    from bayescmoe.families import get_family

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


def fit_ours(spec, X, y, start):
    import bayescmoe as bc

    t0 = time.perf_counter()
    fit = bc.fit_mle(spec, X, y, init=start)
    return time.perf_counter() - t0, fit.params, fit.n_iter


def fit_find_map(spec, X, y, start):
    import pymc as pm

    model = pymc_user_model(spec, X, y)
    t0 = time.perf_counter()
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        point = pm.find_MAP(initvals={k: np.asarray(v) for k, v in start.items()}, progressbar=False,
                            return_inferencedata=False, jitter=False)
    seconds = time.perf_counter() - t0
    return seconds, {k: point[k] for k in spec.param_names}, None


_FROZEN: dict = {}


def fit_find_map_frozen(spec, X, y, start):
    """find_MAP on a model from pm.model.transform.freeze_model, which caches its compiled functions."""
    import pymc as pm
    from pymc.model.transform.optimization import freeze_model

    key = (spec.name, len(y))
    if key not in _FROZEN:  # same data for every call with this key
        _FROZEN[key] = freeze_model(pymc_user_model(spec, X, y))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        point = pm.find_MAP(initvals={k: np.asarray(v) for k, v in start.items()}, progressbar=False,
                            return_inferencedata=False, jitter=False, model=_FROZEN[key])
    return time.perf_counter() - t0, {k: point[k] for k in spec.param_names}, None


def warm(ns, repeats, methods):
    import bayescmoe as bc

    rows = []
    for name in SPECS:
        spec = bc.load_spec(name)
        for n in ns:
            X, y, _ = bc.simulate(spec, n, seed=0)
            start = start_point(spec, n)
            row = {"spec": name, "n": n}
            for label, method in methods.items():
                method(spec, X, y, start)  # first call: compile (ours: once per process; find_MAP: every call)
                times, params = [], None
                for _ in range(repeats):
                    seconds, params, n_iter = method(spec, X, y, start)
                    times.append(seconds)
                row[label] = {
                    "median_s": statistics.median(times),
                    "times_s": times,
                    "loglik": bc.loglik(spec, X, y, params),
                }
                print(f"{name} n={n} {label}: {statistics.median(times):.3f} s, loglik {row[label]['loglik']:.6f}",
                      flush=True)
            rows.append(row)
    return rows


COLD_SNIPPET = """
import time, sys, warnings
t0 = time.perf_counter()
sys.path.insert(0, {bench!r})
import numpy as np
import bayescmoe as bc
from bench_fit import start_point, fit_ours, fit_find_map
spec = bc.load_spec({spec!r})
X, y, _ = bc.simulate(spec, {n}, seed=0)
start = start_point(spec, {n})
seconds, params, _ = {method}(spec, X, y, start)
print(time.perf_counter() - t0, seconds, bc.loglik(spec, X, y, params))
"""


def cold(n, methods):
    rows = []
    for name in SPECS:
        for label, method in methods.items():
            with tempfile.TemporaryDirectory() as compiledir:
                # base_compiledir holds both the C modules and Numba's cache: both start empty
                env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={compiledir}")
                code = COLD_SNIPPET.format(bench=os.path.dirname(os.path.abspath(__file__)), spec=name, n=n,
                                           method=method.__name__)
                t0 = time.perf_counter()
                out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
                wall = time.perf_counter() - t0
            if out.returncode != 0:
                raise RuntimeError(out.stderr)
            in_process, call, loglik = (float(v) for v in out.stdout.split())
            rows.append({"spec": name, "n": n, "method": label, "process_wall_s": wall,
                         "import_to_result_s": in_process, "first_call_s": call, "loglik": loglik})
            print(f"cold {name} n={n} {label}: process {wall:.1f} s (first call {call:.1f} s)", flush=True)
    return rows


def machine():
    import arviz
    import pymc
    import pytensor

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "pymc": pymc.__version__,
            "pytensor": pytensor.__version__, "arviz": arviz.__version__, "numpy": np.__version__,
            "pytensor_mode_default": str(pytensor.config.mode), "date": time.strftime("%Y-%m-%d")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", default="1000,10000,100000")
    parser.add_argument("--repeats", type=int, default=5, help="warm calls per method (median reported)")
    parser.add_argument("--map-repeats", type=int, default=3, help="warm find_MAP calls (they are slow)")
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--skip-warm", action="store_true")
    parser.add_argument("--skip-find-map", action="store_true")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "fit.json"))
    args = parser.parse_args()
    ns = [int(v) for v in args.ns.split(",")]
    methods = {"fit_mle": fit_ours} | ({} if args.skip_find_map else {"find_MAP": fit_find_map})
    result = {"machine": machine(), "command": " ".join(sys.argv)}
    result["warm"] = [] if args.skip_warm else warm(ns, args.repeats, {"fit_mle": fit_ours})
    if not args.skip_find_map and not args.skip_warm:
        map_rows = warm(ns, args.map_repeats, {"find_MAP": fit_find_map, "find_MAP_frozen": fit_find_map_frozen})
        for row, extra in zip(result["warm"], map_rows):
            row.update({k: extra[k] for k in ("find_MAP", "find_MAP_frozen")})
    if not args.skip_cold:
        result["cold"] = cold(10_000, methods)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2)
    print_table(result)


def print_table(result):
    print("\n| spec | n | fit_mle (s) | find_MAP (s) | ratio | find_MAP, frozen model (s) | ratio "
          "| loglik fit_mle - find_MAP | loglik fit_mle - frozen |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in result["warm"]:
        ours = row["fit_mle"]
        cells = [row["spec"], str(row["n"]), f"{ours['median_s']:.3f}"]
        for key in ("find_MAP", "find_MAP_frozen"):
            theirs = row.get(key)
            cells += [f"{theirs['median_s']:.3f}", f"{theirs['median_s'] / ours['median_s']:.0f}x"] if theirs else ["-", "-"]
        for key in ("find_MAP", "find_MAP_frozen"):
            theirs = row.get(key)
            cells.append(f"{ours['loglik'] - theirs['loglik']:+.2e}" if theirs else "-")
        print("| " + " | ".join(cells) + " |")
    for row in result.get("cold", []):
        print(f"cold: {row['spec']} n={row['n']} {row['method']}: fresh process to result "
              f"{row['process_wall_s']:.1f} s (first call {row['first_call_s']:.1f} s)")


if __name__ == "__main__":
    main()
