"""The ``check`` command: distinguishability, strong identifiability, Fisher information and least favourable
truths of a spec, and the tables it prints.
"""

from __future__ import annotations

import json

from bayescmoe.cli.args import (
    SPEC_HELP,
    _nonnegative_int,
    _positive_int,
)
from bayescmoe.cli.output import _finite_or_none, _Progress

__all__: list[str] = []


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


def add_parsers(sub) -> None:
    """Register the ``check`` command, with its arguments."""
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
