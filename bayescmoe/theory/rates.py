"""Theoretical rate exponents (loss ~ n^-r) derived from a spec and its schedules (MODEL.md section 4).

The rules, from the seeds (arXiv 2505.18455 and 2410.12258):

* the density (Hellinger) converges at r = 1/2 in every setting;
* softmax gating, distinguishable (Proposition 1: the pre-trained family is not Gaussian):
  r = 1/2 for beta, tau, exp(tau), eta, nu (and b, an expert parameter like eta);
* softmax gating, not distinguishable (Gaussian f0 with h0 = h) and a strongly identifiable
  expert (tanh, sigmoid, GELU), the distance ||(eta* - eta0, nu* - nu0)|| shrinking as n^-kappa:
  r = 1/2 - 2 kappa for exp(tau) (and tau, by the delta method, tau* being fixed), 1/2 - kappa for
  beta, eta, nu (and b). kappa is the merge schedule's; kappa = 0 when nothing merges or when
  the coordinate that does not merge differs from the pre-trained value (the distance then
  stays bounded away from 0);
* constant gating, distinguishable (non-Gaussian f0), lam* ~ n^-kappa (kappa = 0 without a
  vanish schedule): r = 1/2 for lam, 1/2 - kappa for eta, b, nu;
* softmax gating, distinguishable, the gate at x = 0 vanishing as n^-kappa (a ``tau`` vanish
  schedule): r = 1/2 for eta, b, nu, whatever kappa (arXiv 2505.18455: softmax gating removes the
  1/lam* factor of constant gating); the seeds state no exponent for beta, tau, exp(tau) there.

Everything else (ReLU or linear experts in the non-distinguishable softmax case, a Gaussian f0
whose expert differs from the prompt's, constant gating with a Gaussian f0) has no exponent in
the seeds: the rate is ``None`` with the reason, and tables say so rather than invent one.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from bayescmoe.model.proposition import proposition_1
from bayescmoe.model.spec import Spec
from bayescmoe.theory.voronoi import CELL_POWER, R_EXPONENT

__all__ = ["Rate", "theoretical_rates", "STRONGLY_IDENTIFIABLE"]

#: Experts satisfying Definition 2 (strong identifiability) according to the seeds.
STRONGLY_IDENTIFIABLE = ("tanh", "sigmoid", "gelu")


@dataclass(frozen=True)
class Rate:
    """A theoretical exponent r (loss ~ n^-r), or ``None``, and where it comes from."""

    parameter: str
    exponent: float | None
    reason: str

    @property
    def text(self) -> str:
        """The exponent as a fraction when it is one (``3/8``), else ``-``."""
        if self.exponent is None:
            return "-"
        return str(Fraction(self.exponent).limit_denominator(64))


def _kappa(spec: Spec, parameter: str) -> float:
    return next((s.kappa for s in spec.schedules if s.parameter == parameter), 0.0)


def _merging_kappa(spec: Spec) -> float:
    """kappa of ||(eta* - eta0, nu* - nu0)|| ~ n^-kappa (0 if the distance stays bounded away from 0)."""
    pre = spec.pretrained
    merging = [s for s in spec.schedules if s.parameter in ("eta", "nu")]
    eta_off = "eta" not in {s.parameter for s in merging} and not np.allclose(spec.truth["eta"], pre.eta)
    nu_off = "nu" not in {s.parameter for s in merging} and not np.isclose(spec.truth["nu"], pre.scale)
    b_off = spec.prompt.intercept and not np.isclose(spec.truth.get("b", 0.0), pre.intercept)
    if not merging or eta_off or nu_off or b_off:
        return 0.0
    return min(s.kappa for s in merging)


def theoretical_rates(spec: Spec) -> dict[str, Rate]:
    """The exponent of every loss of ``spec`` (``beta, tau, exp_tau, eta, [b], nu`` or
    ``lam, eta, [b], nu``, and ``density``).

    >>> import bayescmoe as bc
    >>> rates = theoretical_rates(bc.load_spec("softmax_eta_merging"))
    >>> rates["exp_tau"].text, rates["beta"].text, rates["density"].text
    ('1/4', '3/8', '1/2')
    """
    params = [p for p in spec.param_names]
    if spec.gating == "softmax":
        params.insert(params.index("tau") + 1, "exp_tau")
    plain_exact = not spec.has_pretrained and not spec.overfit and _linear(spec)
    if spec.overfit:
        out = {}
    elif plain_exact:
        why = "exact-fitted plain softmax-gated Gaussian MoE, linear experts (arXiv 2305.03288): 1/2"
        out = {p: Rate(p, 0.5, why) for p in params}
    elif spec.K > 1 or not spec.has_pretrained or spec.pretrained.mean_from_data:
        why = (
            "the plain mixture of experts" if not spec.has_pretrained
            else "a frozen expert given by a model's predictions" if spec.pretrained.mean_from_data
            else f"{spec.K} prompts"
        )  # fmt: skip
        out = {p: Rate(p, None, f"{why}: the seeds state no exponent") for p in params}
    else:
        out = {p: _rate(spec, p) for p in params}
    if spec.multi and spec.gating == "softmax":
        out |= voronoi_rates(spec)
    out["density"] = Rate("density", 0.5, "density (Hellinger): 1/2 in every setting")
    return out


def _linear(spec: Spec) -> bool:
    return all(p.expert == "linear" for p in spec.prompts)


def voronoi_rates(spec: Spec) -> dict[str, Rate]:
    """The exponents of the Voronoi losses (MODEL.md section 10): ``voronoi`` and ``weight`` 1/2, inside a cell
    of M = K - K* + 1 fitted prompts beta and b 1/(2 r(M)), eta and nu 1/r(M), in cells of one prompt 1/2.
    A theorem (arXiv 2305.03288) for the plain MoE with linear experts; for the contaminated model the
    conjecture the project tests; no exponent for other experts.

    >>> import bayescmoe as bc
    >>> rates = voronoi_rates(bc.load_spec("overfit_moe_k2_on_1"))
    >>> rates["voronoi"].text, rates["beta_cell"].text, rates["eta_cell"].text
    ('1/2', '1/8', '1/4')
    """
    M = spec.K - spec.K_true + 1
    present = [name for name in CELL_POWER if name in spec.param_names]
    names = ["voronoi", "weight"]
    names += [f"{p}_cell" for p in present] if spec.overfit else []
    names += [f"{p}_single" for p in present] if spec.K_true >= 2 else []
    if not _linear(spec):
        experts = sorted({p.expert for p in spec.prompts} - {"linear"})
        why = f"{', '.join(experts)} experts: the Voronoi theory (arXiv 2305.03288) is for linear experts"
        return {n: Rate(n, None, why) for n in names}
    if spec.overfit and M not in R_EXPONENT:
        return {n: Rate(n, None, f"a cell of {M} fitted prompts: r({M}) is not tabulated") for n in names}
    source = (
        "arXiv 2305.03288 (plain softmax-gated Gaussian MoE, linear experts)" if not spec.has_pretrained
        else "conjectured from arXiv 2305.03288 (no theorem for the contaminated model)"
    )  # fmt: skip
    out = {}
    for name in names:
        if name.endswith("_cell"):
            s = CELL_POWER[name[: -len("_cell")]] * R_EXPONENT[M]
            out[name] = Rate(name, 1.0 / (2.0 * s), f"{source}: inside a cell of {M}, 1/(2 * {s:g})")
        else:
            out[name] = Rate(name, 0.5, f"{source}: 1/2")
    return out


def _rate(spec: Spec, p: str) -> Rate:
    pre, prompt = spec.pretrained, spec.prompt
    verdict = proposition_1(spec)
    if spec.gating == "softmax":
        if verdict and _kappa(spec, "tau") > 0:
            if p in ("beta", "tau", "exp_tau"):
                return Rate(
                    p,
                    None,
                    "softmax gate vanishing at x = 0 as n^-kappa: the seeds state the prompt parameters' rate only",
                )
            return Rate(
                p,
                0.5,
                f"softmax, distinguishable ({pre.family} f0), gate ~ n^-{_kappa(spec, 'tau'):g}: "
                "1/2, no dependence on the vanishing gate (the seeds' claim for softmax gating)",
            )
        if verdict:
            return Rate(p, 0.5, f"softmax, distinguishable ({pre.family} f0, Proposition 1): 1/2")
        if verdict is None:
            return Rate(
                p,
                None,
                "Gaussian f0 whose mean the prompt cannot reproduce: Proposition 1 does not "
                "decide distinguishability; the seeds state no exponent",
            )
        if prompt.expert not in STRONGLY_IDENTIFIABLE:
            return Rate(
                p,
                None,
                f"not distinguishable and {prompt.expert} is not strongly identifiable: the seeds state no exponent",
            )
        kappa = _merging_kappa(spec)
        if p in ("exp_tau", "tau"):
            how = " (tau by the delta method)" if p == "tau" else ""
            return Rate(
                p, 0.5 - 2 * kappa, f"softmax, not distinguishable, distance ~ n^-{kappa:g}: 1/2 - 2 kappa{how}"
            )
        return Rate(p, 0.5 - kappa, f"softmax, not distinguishable, distance ~ n^-{kappa:g}: 1/2 - kappa")
    if not verdict:
        return Rate(p, None, "constant gating with a Gaussian f0: the seeds give no closed form")
    kappa = _kappa(spec, "lam")
    if p == "lam":
        return Rate(p, 0.5, f"constant gating, distinguishable ({pre.family} f0), lam* ~ n^-{kappa:g}: 1/2")
    return Rate(p, 0.5 - kappa, f"constant gating, distinguishable ({pre.family} f0), lam* ~ n^-{kappa:g}: 1/2 - kappa")
