"""Several prompts: fit_mle against warm pm.find_MAP on the model a PyMC user writes (pm.Mixture).

    python benchmarks/prompts.py                       # laplace_two_prompts at n = 1e4 and 1e5, 5 timed calls
    python benchmarks/prompts.py --ns 10000 --repeats 3
    python benchmarks/prompts.py --prompts 3              # laplace_two_prompts with a third prompt (K = 3)
    python benchmarks/prompts.py --seeds 6 --repeats 3    # 6 datasets and starts (seeds 0..5) at each n

On the same data (simulate(spec, n, seed=0)) and from the same start (the truth perturbed by
N(0, 0.1^2), seeded, as benchmarks/run.py does), each method's median wall time after one untimed call
(compilation), each timed call after a rest of PAUSE seconds, and the log-likelihood it reached, scored by
bayescmoe.loglik.  The PyMC model is written as a user would: a pm.Mixture of the frozen Laplace expert and two Normal prompts, softmax weights with
the frozen expert's logit 0, flat priors; find_MAP with its defaults (L-BFGS-B, jitter off).
Results in benchmarks/results/prompts.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import machine, start_point  # noqa: E402

SPEC = "laplace_two_prompts"
#: Seconds of rest before each timed call: OpenBLAS's and OpenMP's idle threads spin for a while after a call, and a
#: call timed right after the other method's on 2 cores shared them with those threads (K = 2, n = 1e4: fit_mle
#: 0.046 s after find_MAP with 2 BLAS threads, 0.023 s with OPENBLAS_NUM_THREADS=1).
PAUSE = 0.5


def three_prompts():
    """laplace_two_prompts with a third tanh prompt whose gate opens along x1 + x2 (beta (1.5, 1.5), tau -1) and
    whose mean (eta (0.8, 0.8)) and variance (0.9) differ from the other two."""
    import tomllib

    import bayescmoe as bc

    data = tomllib.loads((HERE.parent / "models" / f"{SPEC}.toml").read_text())
    data["name"] = "laplace_three_prompts"
    data["prompts"].append({"expert": "tanh"})
    truth = data["truth"]
    truth["beta"].append([1.5, 1.5])
    truth["tau"].append(-1.0)
    truth["eta"].append([0.8, 0.8])
    truth["nu"] = [0.1, 0.4, 0.9]
    return bc.spec_from_dict(data)


def pymc_user_model(spec, X, y):
    import pymc as pm
    import pytensor.tensor as pt

    from bayescmoe.model.experts import get_expert
    from bayescmoe.model.families import get_family

    pre = spec.pretrained
    with pm.Model(coords={"prompt": list(spec.prompt_names), "covariate": list(spec.covariate_names)}) as model:
        Xd = pm.Data("X", X)
        beta = pm.Flat("beta", dims=("prompt", "covariate"))
        tau = pm.Flat("tau", dims="prompt")
        eta = pm.Flat("eta", dims=("prompt", "covariate"))
        nu = pm.HalfFlat("nu", dims="prompt")
        logits = pt.concatenate([pt.zeros((Xd.shape[0], 1)), Xd @ beta.T + tau], axis=1)
        w = pm.math.softmax(logits, axis=1)
        mu0 = get_expert(pre.expert)(Xd @ np.array(pre.eta) + pre.intercept)
        comps = [get_family(pre.family).dist(mu0, pre.scale, pre.df)]
        comps += [pm.Normal.dist(mu=get_expert(p.expert)(Xd @ eta[k]), sigma=pt.sqrt(nu[k]))
                  for k, p in enumerate(spec.prompts)]  # fmt: skip
        pm.Mixture("y", w=w, comp_dists=comps, observed=y)
    return model


def run_find_map(spec, X, y, start):
    import pymc as pm

    with pymc_user_model(spec, X, y), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        point = pm.find_MAP(initvals={k: np.asarray(v) for k, v in start.items()}, progressbar=False,
                            return_inferencedata=False, jitter=False)  # fmt: skip
    return {k: point[k] for k in spec.param_names}


def run_fit_mle(spec, X, y, start):
    import bayescmoe as bc

    return bc.fit_mle(spec, X, y, init=start).params


def main(argv=None) -> int:
    import bayescmoe as bc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--prompts", type=int, choices=(2, 3), default=2)
    parser.add_argument("--seeds", type=int, default=1,
                        help="datasets and starts per n, seeds 0 .. SEEDS-1 of simulate and of the start (default 1)")  # fmt: skip
    parser.add_argument("--out", default=None, help="default benchmarks/results/prompts.json (K = 3: prompts3.json; "
                        "with --seeds, prompts_seeds.json, prompts3_seeds.json)")  # fmt: skip
    args = parser.parse_args(argv)
    spec = bc.load_spec(SPEC) if args.prompts == 2 else three_prompts()
    methods = {"fit_mle": run_fit_mle, "find_MAP": run_find_map}
    rows = []
    for n, seed in ((int(v), s) for v in args.ns.split(",") for s in range(args.seeds)):
        X, y, _ = bc.simulate(spec, n, seed=seed)
        start = start_point(spec, n, seed=seed)
        params = {m: f(spec, X, y, start) for m, f in methods.items()}  # compile, warm the caches
        times = {m: [] for m in methods}
        for _ in range(args.repeats):
            for m, f in methods.items():
                time.sleep(PAUSE)  # the other method's spinning BLAS / OpenMP threads go to sleep first
                t0 = time.perf_counter()
                params[m] = f(spec, X, y, start)
                times[m].append(time.perf_counter() - t0)
        row = {"spec": spec.name, "n": n, "seed": seed}
        for m in methods:
            row[m] = {"median_s": statistics.median(times[m]), "times_s": times[m],
                      "loglik": bc.loglik(spec, X, y, params[m])}  # fmt: skip
        row["ratio"] = row["find_MAP"]["median_s"] / row["fit_mle"]["median_s"]
        row["loglik_gap"] = row["fit_mle"]["loglik"] - row["find_MAP"]["loglik"]
        rows.append(row)
        print(f"n={n} seed {seed}: fit_mle {row['fit_mle']['median_s']:.3f} s, find_MAP "
              f"{row['find_MAP']['median_s']:.3f} s ({row['ratio']:.1f}x); loglik fit_mle - find_MAP = "
              f"{row['loglik_gap']:+.3g}", flush=True)  # fmt: skip
    summary = {}
    for n in sorted({r["n"] for r in rows}):
        at = [r for r in rows if r["n"] == n]
        total = {m: sum(r[m]["median_s"] for r in at) for m in methods}
        summary[str(n)] = {"seeds": len(at), "median_ratio": statistics.median(r["ratio"] for r in at),
                           "ratio_of_totals": total["find_MAP"] / total["fit_mle"], "total_s": total}  # fmt: skip
        if len(at) > 1:
            print(f"n={n}, {len(at)} seeds: ratio median {summary[str(n)]['median_ratio']:.1f}x, of the totals "
                  f"{summary[str(n)]['ratio_of_totals']:.1f}x (fit_mle {total['fit_mle']:.2f} s, find_MAP "
                  f"{total['find_MAP']:.2f} s)")  # fmt: skip
    name = ("prompts" if args.prompts == 2 else "prompts3") + ("_seeds" if args.seeds > 1 else "")
    out = Path(args.out) if args.out else HERE / "results" / f"{name}.json"
    out.write_text(json.dumps({"machine": machine(), "command": " ".join(["python"] + sys.argv), "rows": rows,
                               "summary": summary}, indent=2) + "\n")  # fmt: skip
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
