"""The study commands: ``rates``, ``reproduce`` and ``widening``, with the tables they print (rate tables,
disagreements with the paper, cut-offs, least favourable pairs, the constant-gating analyses, widening).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings

from bayescmoe.cli.args import (
    SPEC_HELP,
    _execution_options,
    _floats,
    _ints,
    _nonnegative_int,
    _nuts_options,
    _positive_int,
)
from bayescmoe.cli.output import _fmt, _Progress

__all__: list[str] = []


def _off_box(r) -> str:
    """The rate over the sizes where no fit ended on the box, where some did (else blank)."""
    if not r.n_bound or r.regular_n0 is None or r.regular.get("empirical") is None:
        return ""
    return f"{_fmt(r.regular['empirical'])} (n>={r.regular_n0})"


def _print_rate_table(rows) -> None:
    print(
        f"{'setting':<24} {'parameter':<11} {'theory':>6} {'paper':>10} {'ours':>6} {'95% CI':>14} "
        f"{'off box':>16} {'Fisher':>6} {'fits':>5} {'failed':>6} {'bound':>5}"
    )
    for r in rows:
        ci = f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]"
        ours = _fmt(r.empirical) + ("!" if r.box_dominated else " ")
        print(
            f"{r.setting:<24} {r.parameter:<11} {r.theory_text:>6} {r.paper or '-':>10} {ours:>6} "
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
    from bayescmoe.studies.reproduce import cell_counts, reproduce

    scale = "paper" if args.paper else "quick"
    group = "constant" if args.constant else "overfit" if args.overfit else "softmax"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / (f"store-{scale}.sqlite" if group == "softmax" else f"store-{group}-{scale}.sqlite")
    results = reproduce(
        scale, store, group=group, workers=args.workers, scheduler=args.scheduler, progress=_Progress(not args.json)
    )
    rows = [row for _, table in results for row in table]
    for study, table in results:
        plot_study(study, table, out)
    extra = _constant_analyses(results) if group == "constant" else cell_counts(results) if group == "overfit" else {}
    if args.json:
        print(
            json.dumps(
                {"rates": [r.to_dict() for r in rows], **extra} if extra else [r.to_dict() for r in rows], indent=2
            )
        )
    else:
        evidence = io.StringIO()
        with contextlib.redirect_stdout(evidence):
            _print_rate_table(rows)
            _print_least_favourable_pairs(rows, args.paper)
            if extra:
                _print_extra(extra)
        path = out / f"evidence-{group}-{scale}.txt"
        path.write_text(evidence.getvalue())
        _print_headline(rows)
        if extra:
            _print_extra(extra)
        if args.evidence:
            print("\n" + evidence.getvalue().rstrip())
        print(
            f"\nthe evidence (every loss with its fits, the box, the cut-offs{', the least favourable pairs' if group == 'softmax' else ''}): "
            f"{path}{'' if args.evidence else ' (or --evidence)'}; plots and the store of every fit: {out}/"
        )
    return 0


#: Left out of the headline: tau's rate is the one of exp(tau), which the paper reports (tau is in the evidence).
HEADLINE_SKIP = frozenset({"tau"})


def _print_headline(rows) -> None:
    """One line per setting and loss: theory, the paper, ours with its CI, the rate off the box and the local
    Fisher prediction; a legend of three lines."""
    print(
        f"{'setting':<24} {'loss':<11} {'theory':>6} {'paper':>10} {'ours [95% CI]':>19} {'off box':>16} {'Fisher':>6}"
    )
    shown = [r for r in rows if r.parameter not in HEADLINE_SKIP]
    for r in shown:
        ours = f"{_fmt(r.empirical)}{'!' if r.box_dominated else ' '} [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]"
        print(
            f"{r.setting:<24} {r.parameter:<11} {r.theory_text:>6} {r.paper or '-':>10} {ours:>19} "
            f"{_off_box(r):>16} {_fmt(r.local):>6}"
        )
    judged = [r for r in shown if r.agrees is not None]
    print(
        "ours: r in loss ~ n^-r, 95% bootstrap CI; ! decided by fits on the box (read 'off box', the sizes where none "
        f"was);\nFisher: the local prediction at these truths; theory: the minimax rate (MODEL.md sections 4, 10). Within 0.05 of the theory, "
        f"CI covering it: {sum(bool(r.agrees) for r in judged)} of {len(judged)}."
    )


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


def _print_extra(extra) -> None:
    if "cells" in extra:
        _print_cell_counts(extra["cells"])
    else:
        _print_constant_analyses(extra)


def _print_cell_counts(cells) -> None:
    print("\nthe fits' Voronoi cells, share of converged fits at the smallest and the largest n:")
    print(f"{'setting':<26} {'n':>7} {'fits':>5} {'D saturated':>12} {'empty cell':>11} {'crowded cell':>13}")
    for name, per_n in cells.items():
        for n in sorted(per_n)[:1] + sorted(per_n)[-1:]:
            c = per_n[n]
            print(f"{name:<26} {n:>7} {c['fits']:>5} {c['voronoi_saturated']:>12.2f} {c['empty_cells']:>11.2f} "
                  f"{c['crowded_cells']:>13.2f}")  # fmt: skip


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


def add_parsers(sub) -> None:
    """Register ``widening``, ``rates`` and ``reproduce``, with their arguments."""
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
        "in --out. --constant runs the constant-gating group of arXiv 2410.12258 instead, --overfit the "
        "over-specified prompts of MODEL.md section 10.",
    )
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--quick", action="store_true", help="the quick scale (default)")
    scale.add_argument("--paper", action="store_true", help="the paper's scale")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--constant",
        action="store_true",
        help="the constant-gating group (arXiv 2410.12258) instead of the softmax one: its three "
        "experiments, prompt vanishing and merging, softmax against constant gating, the b-nu coupling",
    )
    which.add_argument(
        "--overfit",
        action="store_true",
        help="the over-specified group (MODEL.md section 10): K = 2 on K* = 1 and K = 3 on K* = 2 prompts, plain and "
        "beside a Laplace or a Gaussian frozen expert, and the exact K = K* = 2; Voronoi losses and the errors "
        "inside the cells (--quick about 3 minutes; --paper the full study, about 30 minutes)",
    )
    p.add_argument(
        "--out",
        default="bayescmoe-reproduce",
        help="directory of the store and the plots (default bayescmoe-reproduce)",
    )
    _execution_options(p)
    p.add_argument(
        "--evidence",
        action="store_true",
        help="print the evidence under the headline (every loss with its fits and the box, the cut-offs, the least "
        "favourable pairs); it is written to OUT/evidence-GROUP-SCALE.txt in any case",
    )
    p.set_defaults(func=cmd_reproduce)
