"""How many prompts the diamonds need (issue 21, item 4): BIC over K = 0..K_max, the dendrogram of one K_max fit,
and merge-truncate-merge on its NUTS posterior, on the whole Fair-cut target of the fine-tuning study
(bayescmoe.finetune.study, the frozen booster of the well-cut stones; benchmarks/RESULTS.md "Fine-tuning a real
frozen model").  Writes ``benchmarks/results/diamonds_prompts.json``.

    python benchmarks/diamonds_prompts.py --k-max 5 --draws 300
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import bayescmoe as bc

OUT = Path(__file__).resolve().parent / "results" / "diamonds_prompts.json"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k-max", type=int, default=5)
    parser.add_argument("--draws", type=int, default=300, help="NUTS draws and tuning steps per chain (2 chains)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    task = bc.diamonds_task(seed=args.seed)
    X, y = task.X_target, task.y_target
    mean = task.frozen.predict(X)
    n = len(y)
    frozen = bc.frozen_logpdf(y, mean, "normal", task.scale).sum()
    rows = [{"K": 0, "loglik": float(frozen), "bic": float(-2 * frozen), "seconds": 0.0, "warnings": []}]
    fits = {}
    for K in range(1, args.k_max + 1):
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = bc.ContaminatedMoE(pretrained=task.frozen, scale=task.scale, prompts=K, random_state=args.seed)
            fits[K] = est.fit(X, y)
        fit = est.fit_
        rows.append({"K": K, "loglik": fit.loglik, "bic": fit.bic, "n_params": fit.n_params,
                     "seconds": time.perf_counter() - t0,
                     "warnings": [f"{w.category.__name__}: {str(w.message)[:200]}" for w in caught
                                  if "BLAS" not in str(w.message)]})  # fmt: skip
        print(f"K = {K}: loglik {fit.loglik:.2f}, BIC {fit.bic:.2f} ({rows[-1]['seconds']:.0f} s)", flush=True)
    dendrograms = {K: fits[K].select_prompts(X, y) for K in range(2, args.k_max + 1)}
    for K, d in dendrograms.items():
        print(f"dendrogram of the K = {K} fit: DSC chooses {d.chosen}\n{d.table()}", flush=True)
    big = fits[args.k_max]
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        big.sample_posterior(X, y, draws=args.draws, tune=args.draws, chains=2, sampler="pymc")
    nuts_seconds = time.perf_counter() - t0
    mtm = {c: big.posterior_prompts(c=c) for c in (0.5, 1.0, 2.0)}
    for c, m in mtm.items():
        print(f"c = {c}:\n{m.table()}", flush=True)
    result = {
        "n": n, "k_max": args.k_max, "draws": args.draws, "bic": rows,
        "bic_choice": min(rows, key=lambda r: r["bic"])["K"],
        "dsc": {K: {"chosen": d.chosen, "heights": [lv.height for lv in d.levels[:-1]], "dsc": d.dsc}
                for K, d in dendrograms.items()},
        "mtm": {str(c): m.to_dict() for c, m in mtm.items()}, "nuts_seconds": nuts_seconds,
        "nuts_warnings": [f"{w.category.__name__}: {str(w.message)[:200]}" for w in caught
                          if "BLAS" not in str(w.message)],
    }  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, default=float))
    print(f"BIC chooses {result['bic_choice']}; written {OUT}")


if __name__ == "__main__":
    main()
