"""The coarse-to-fine levels' stopping rule: a level's walk ended at LEVEL_NATS (1 nat over the level's rows)
against the rule before 2026-12-07 (STALL_NATS, 1e-6 nats: every level to full precision).

    python benchmarks/levels.py                         # K = 3, n = 1e5, seeds 0..5
    python benchmarks/levels.py --prompts 2 --seeds 6

The data and start of seed s are those of benchmarks/prompts.py (simulate(spec, n, seed=s), the truth perturbed
by N(0, 0.1^2)); each rule's fit_mle timed twice after an untimed call, the faster kept, each after a rest of
prompts.PAUSE; the log-likelihood each reaches.  Results in benchmarks/results/levels.json (K = 2: levels2.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from prompts import PAUSE, SPEC, three_prompts  # noqa: E402
from run import machine, start_point  # noqa: E402


def main(argv=None) -> int:
    import bayescmoe as bc
    from bayescmoe.fit import multistart
    from bayescmoe.fit.problem import STALL_NATS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--prompts", type=int, choices=(2, 3), default=3)
    parser.add_argument("--seeds", type=int, default=6)
    args = parser.parse_args(argv)
    spec = bc.load_spec(SPEC) if args.prompts == 2 else three_prompts()
    rules = {"full precision (STALL_NATS)": STALL_NATS, "LEVEL_NATS": multistart.LEVEL_NATS}
    rows = []
    for seed in range(args.seeds):
        X, y, _ = bc.simulate(spec, args.n, seed=seed)
        start = start_point(spec, args.n, seed=seed)
        row = {"seed": seed}
        order = list(rules) if seed % 2 == 0 else list(rules)[::-1]  # neither rule always runs first
        try:
            for name in order:
                multistart.LEVEL_NATS = rules[name]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fit = bc.fit_mle(spec, X, y, init=start)
                    times = []
                    for _ in range(2):
                        time.sleep(PAUSE)
                        t0 = time.perf_counter()
                        fit = bc.fit_mle(spec, X, y, init=start)
                        times.append(time.perf_counter() - t0)
                row[name] = {"nats": rules[name], "seconds": min(times), "loglik": fit.loglik, "n_iter": fit.n_iter}
        finally:
            multistart.LEVEL_NATS = rules["LEVEL_NATS"]
        rows.append(row)
        print(f"seed {seed}: " + ", ".join(f"{k} {row[k]['seconds']:.3f} s (loglik {row[k]['loglik']:.6f})"
                                           for k in rules), flush=True)  # fmt: skip
    totals = {k: sum(r[k]["seconds"] for r in rows) for k in rules}
    print("totals: " + ", ".join(f"{k} {v:.2f} s" for k, v in totals.items()))
    out = HERE / "results" / ("levels.json" if args.prompts == 3 else "levels2.json")
    out.write_text(json.dumps({"machine": machine(), "command": " ".join(["python"] + sys.argv), "n": args.n,
                               "rows": rows, "totals": totals}, indent=2) + "\n")  # fmt: skip
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
