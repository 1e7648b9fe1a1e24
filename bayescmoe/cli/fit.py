"""The commands on one dataset: ``specs``, ``simulate``, ``fit`` and ``sample`` (NUTS), each with the table it prints."""

from __future__ import annotations

import json
import warnings

from bayescmoe.cli.args import (
    SPEC_HELP,
    _data_options,
    _nonnegative_int,
    _nuts_options,
    _positive_int,
    _probability,
    _read_data,
)

__all__: list[str] = []


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


def add_parsers(sub) -> None:
    """Register ``specs``, ``simulate``, ``fit`` and ``sample``, with their arguments."""
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
