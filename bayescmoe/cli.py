"""The ``bayescmoe`` command line: argument parsing and printing only, no statistics.

Errors are one line on stderr and a non-zero exit status, never a traceback
(set ``BAYESCMOE_DEBUG=1`` to see one).  Warnings are one line each on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
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
    kind = "positive" if low == 1 else "non-negative"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a {kind} integer, got {text!r}")
        return value

    return parse


_positive_int, _nonnegative_int = _int_at_least(1), _int_at_least(0)


def _columns(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


# -- commands ---------------------------------------------------------------------------------


def cmd_specs(args) -> int:
    import bayescmoe as bc

    specs = [bc.load_spec(name) for name in bc.list_specs()]
    if args.json:
        print(json.dumps([s.to_dict() for s in specs], indent=2))
        return 0
    width = max(len(s.name) for s in specs)
    print(f"{'name':<{width}}  {'gating':<8}  {'f0':<19}  {'prompt':<8}  d  description")
    for s in specs:
        f0 = f"{s.pretrained.family}/{s.pretrained.expert}"
        summary = s.description.splitlines()[0] if s.description else ""
        print(f"{s.name:<{width}}  {s.gating:<8}  {f0:<19}  {s.prompt.expert:<8}  {s.dim}  {summary}")
    return 0


def cmd_simulate(args) -> int:
    import bayescmoe as bc

    spec = bc.load_spec(args.spec)
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
    X, y = bc.read_csv(args.data, spec, x_columns=args.x_columns, y_column=args.y_column)
    estimator = {"mle": bc.fit_mle, "map": bc.fit_map, "em": bc.fit_em}[args.method]
    fit = estimator(spec, X, y, init=args.init, n_starts=args.n_starts, seed=args.seed)
    print(fit.to_json() if args.json else fit.summary(alpha=args.alpha))
    return 0 if fit.converged else 1


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
    p.add_argument("spec", metavar="SPEC")
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
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--data", required=True, help="CSV file with a header: covariates x1..xd and y")
    p.add_argument("--x-columns", type=_columns, default=None, metavar="A,B,...",
                   help="covariate columns, in order (default x1..xd)")
    p.add_argument("--y-column", default="y", help="response column (default y)")
    p.add_argument("--init", choices=["multistart", "truth"], default="multistart",
                   help="starting points: random multistart (default) or the spec's truth at n")
    p.add_argument("--n-starts", type=_positive_int, default=10, help="random starts (default 10)")
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of the random starts (default 0)")
    p.add_argument("--method", choices=["mle", "map", "em"], default="mle",
                   help="mle: Newton MLE (default); map: MAP under the weakly informative priors; "
                   "em: the MLE by the papers' EM algorithm")
    p.add_argument("--alpha", type=float, default=0.05, help="interval level 1 - alpha (default 0.05)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=cmd_fit)
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
    except Exception as err:  # noqa: BLE001 - the CLI's promise: one line, never a traceback
        if os.environ.get("BAYESCMOE_DEBUG"):
            raise
        print(f"bayescmoe: error: unexpected {type(err).__name__}: {err} "
              "(set BAYESCMOE_DEBUG=1 for a traceback)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
