"""K = 1 fits on named specs, timed warm (best of 3), with their log-likelihoods: issue 19's "nothing else moves".

    python benchmarks/k1_speed.py > new.json
    # the code before, from a checkout in /tmp/old (PYTHONPATH alone does not override the editable install: its
    # meta-path finder wins; drop it first)
    python -c "import sys, runpy; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '')]; sys.path.insert(0, '/tmp/old'); runpy.run_path('benchmarks/k1_speed.py', run_name='__main__')" > old.json

Run the two alternately (twice each) and compare the minima; the log-likelihoods should agree bitwise.
"""

import json
import time
import warnings

import bayescmoe as bc

SPECS = ("softmax_distinguishable", "softmax_eta_merging", "softmax_nu_merging", "constant_gaussian_linear",
         "softmax_studentt_vanishing")  # fmt: skip


def main() -> None:
    warnings.simplefilter("ignore")
    out = {"file": bc.__file__}
    for name in SPECS:
        spec = bc.load_spec(name)
        for n in (10_000, 100_000):
            X, y = bc.simulate(spec, n, seed=1)[:2]
            for init in ("truth", "multistart"):
                bc.fit_mle(spec, X[:500], y[:500], init=init)  # compile
                times = []
                for _ in range(3):
                    t = time.perf_counter()
                    fit = bc.fit_mle(spec, X, y, init=init)
                    times.append(time.perf_counter() - t)
                out[f"{name} {n} {init}"] = [min(times), fit.loglik]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
