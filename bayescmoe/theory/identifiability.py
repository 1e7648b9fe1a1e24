"""Distinguishability, strong identifiability and the Fisher-information spectrum (MODEL.md sections 5-6).

* **Distinguishability** (Definition 1): no non-trivial linear combination of ``f0``, the
  prompt's density ``f`` and the first-order partial derivatives of ``f`` with respect to its
  parameters (``eta``, ``b``, ``nu``) vanishes almost surely.  :func:`check_distinguishability`
  evaluates these functions of ``(x, y)`` on many points and tests the columns' linear
  independence by SVD, at the spec's truth, at random parameter points, and at the prompt that
  is closest to ``f0`` (the pre-trained mean with ``f0``'s variance, where a Gaussian ``f0`` with
  ``h0 = h`` is reproduced exactly).
* **Strong identifiability** (Definition 2): the expert ``h(x; theta) = phi(eta . x + b)`` is
  tested on three groups of functions of ``x`` built from its derivatives in ``theta = (eta, b)``:
  the first derivatives ``dh/dtheta_u``, the second derivatives ``d2h/dtheta_u dtheta_v`` and the
  products ``dh/dtheta_u dh/dtheta_v`` (u <= v), at two distinct parameter points together; the
  expert passes if their union is linearly independent.  (The seeds state the definition in
  words; these three groups are the ones a second-order expansion of the Gaussian prompt in its
  mean produces, through ``df/dm`` and ``d2f/dm2 = 2 df/dnu``.)
* The **expected Fisher information** (:func:`fisher_information`) and a scan of it along the
  distance Delta between the prompt and the pre-trained expert (:func:`delta_scan`).

The tolerance of every rank test is NumPy's: a normalised singular value below
``max(rows, columns) * eps`` is zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt

from bayescmoe.fit.results import _summary_sd
from bayescmoe.model.experts import get_expert
from bayescmoe.model.families import get_family
from bayescmoe.model.proposition import proposition_1
from bayescmoe.model.simulate import draw_covariates, prompt_means
from bayescmoe.model.spec import Spec, load_spec
from bayescmoe.theory.information import expected_information

__all__ = [
    "DistinguishabilityResult",
    "StrongIdentifiabilityResult",
    "FisherInformation",
    "check_distinguishability",
    "check_strong_identifiability",
    "fisher_information",
    "delta_scan",
    "merge_direction",
    "prompt_at",
    "proposition_1",
]


def _normalised_singular_values(M: np.ndarray) -> tuple[np.ndarray, float]:
    """Singular values of ``M`` with unit-norm columns, divided by the largest; and the rank tolerance."""
    norms = np.linalg.norm(M, axis=0)
    # an identically zero column stays zero: a dependence by itself, a zero singular value
    s = np.linalg.svd(M / np.where(norms > 0, norms, 1.0), compute_uv=False)
    return s / s.max(), max(M.shape) * np.finfo(float).eps


# -- distinguishability ------------------------------------------------------------------------


@dataclass(frozen=True)
class DistinguishabilityResult:
    """The verdict of :func:`check_distinguishability`.

    Attributes
    ----------
    distinguishable : bool or None
        ``None`` where it cannot be tested (a frozen expert given by a model's predictions).
    smallest_singular_value : float
        The smallest normalised singular value over every tested parameter point.
    tolerance : float
        ``max(rows, columns) * eps``.
    worst_point : str
        Which parameter point gave the smallest value (``truth``, ``closest to f0``, ``random k``).
    proposition_1 : bool or None
        Proposition 1's verdict, where it decides.
    explanation : str
    """

    spec: str
    distinguishable: bool | None
    smallest_singular_value: float
    tolerance: float
    worst_point: str
    proposition_1: bool | None
    explanation: str
    by_point: dict = field(default_factory=dict, repr=False)


def _f0_variance(spec: Spec) -> float:
    pre = spec.pretrained
    if pre.family == "normal":
        return pre.scale
    if pre.family == "laplace":
        return 2.0 * pre.scale**2
    return pre.scale**2 * (pre.df / (pre.df - 2.0) if pre.df > 2 else 1.0)


def _points(spec: Spec, n_random: int, rng: np.random.Generator) -> dict[str, dict[str, Any]]:
    pre, d = spec.pretrained, spec.dim
    points = {"truth": spec.truth_at(1000)}
    closest = dict(points["truth"], eta=np.array(pre.eta), nu=_f0_variance(spec))
    if spec.prompt.intercept:
        closest["b"] = pre.intercept
    points["closest to f0"] = closest
    for k in range(n_random):
        point = dict(
            points["truth"], eta=rng.standard_normal(d), nu=float(np.exp(rng.uniform(np.log(0.1), np.log(2.0))))
        )
        if spec.prompt.intercept:
            point["b"] = float(rng.standard_normal())
        points[f"random {k + 1}"] = point
    return points


def _definition_1_matrix(spec: Spec, params: dict[str, Any], n_points: int, rng) -> tuple[np.ndarray, list[str]]:
    pre, phi = spec.pretrained, get_expert(spec.prompt.expert)
    family = get_family(pre.family)
    X = draw_covariates(spec, n_points, rng)
    m0 = get_expert(pre.expert).numpy(X @ np.array(pre.eta) + pre.intercept)
    u = X @ np.asarray(params["eta"]) + params.get("b", 0.0)
    m, nu = phi.numpy(u), params["nu"]
    half = n_points // 2  # y from both densities, so that both supports are covered
    y = np.concatenate([family.sample(rng, m0[:half], pre.scale, pre.df), rng.normal(m[half:], np.sqrt(nu))])
    f0 = np.exp(family.logpdf(y, m0, pre.scale, pre.df))
    f = np.exp(-0.5 * (y - m) ** 2 / nu) / np.sqrt(2 * np.pi * nu)
    df_dm = f * (y - m) / nu * phi.derivative(u)
    columns = [f0, f] + [df_dm * X[:, j] for j in range(spec.dim)]
    names = ["f0", "f"] + [f"df/deta[x{j + 1}]" for j in range(spec.dim)]
    if spec.prompt.intercept:
        columns.append(df_dm)
        names.append("df/db")
    columns.append(f * ((y - m) ** 2 / nu - 1.0) / (2.0 * nu))
    names.append("df/dnu")
    return np.column_stack(columns), names


def check_distinguishability(
    spec: Spec | str, *, n_points: int = 4000, n_random: int = 6, seed: int = 0
) -> DistinguishabilityResult:
    """Definition 1, tested numerically (see the module docstring).

    With several prompts (MODEL.md section 8), each prompt is tested against the frozen expert as a
    one-prompt setting, and every pair of prompts against each other at the truth (no combination of
    ``f_j``, ``f_k`` and the derivatives of ``f_k`` vanishes); the spec is distinguishable when every
    test is.  ``by_point`` then holds each test's smallest singular value.  A frozen expert given by a
    model's predictions cannot be tested without its mean function: ``distinguishable`` is ``None``.

    Examples
    --------
    >>> check_distinguishability("softmax_distinguishable").distinguishable
    True
    >>> check_distinguishability("softmax_eta_merging").distinguishable
    False
    """
    spec = load_spec(spec).truth_spec()  # over-specified: the K* true prompts are what can be told apart
    if spec.multi or not spec.has_pretrained:
        return _check_several(spec, n_points, n_random, seed)
    rng = np.random.default_rng(seed)
    by_point, tol = {}, 0.0
    for label, params in _points(spec, n_random, rng).items():
        M, _ = _definition_1_matrix(spec, params, n_points, rng)
        s, tol = _normalised_singular_values(M)
        by_point[label] = float(s[-1])
    worst = min(by_point, key=by_point.get)
    smallest = by_point[worst]
    verdict = smallest > tol
    prop = proposition_1(spec)
    pre = spec.pretrained
    if verdict:
        why = (
            f"f0 ({pre.family}, {pre.expert} mean), f and the derivatives of f in (eta, "
            f"{'b, ' if spec.prompt.intercept else ''}nu) are linearly independent at every tested point "
            f"(smallest normalised singular value {smallest:.2g} at '{worst}', tolerance {tol:.2g})"
        )
    else:
        why = (
            f"at '{worst}' a combination of f0, f and the derivatives of f vanishes (normalised singular "
            f"value {smallest:.2g} <= tolerance {tol:.2g}): the prompt can reproduce the pre-trained "
            f"{pre.family} expert, so their parameters trade off and estimation rates slow down"
        )
    if prop is not None:
        why += f"; Proposition 1 says {'distinguishable' if prop else 'not distinguishable'}"
        if prop != verdict:
            why += " (THE NUMERICAL TEST DISAGREES)"
    else:
        why += "; Proposition 1 does not decide this case (Gaussian f0 whose mean the prompt cannot reproduce)"
    return DistinguishabilityResult(spec.name, bool(verdict), smallest, tol, worst, prop, why, by_point)


def _pair_matrix(spec: Spec, j: int, k: int, params: dict[str, Any], n_points: int, rng) -> np.ndarray:
    """Columns ``f_j``, ``f_k`` and the derivatives of ``f_k`` in its own (eta, b, nu), at the truth."""
    X = draw_covariates(spec, n_points, rng)
    means = prompt_means(spec, X, params)
    nu = np.asarray(params["nu"], float)
    half = n_points // 2
    y = np.concatenate([rng.normal(means[:half, j], np.sqrt(nu[j])), rng.normal(means[half:, k], np.sqrt(nu[k]))])
    density = [np.exp(-0.5 * (y - means[:, i]) ** 2 / nu[i]) / np.sqrt(2 * np.pi * nu[i]) for i in (j, k)]
    eta, b = np.asarray(params["eta"], float), np.asarray(params.get("b", np.zeros(spec.K)), float)
    u = X @ eta[k] + b[k]
    df_dm = density[1] * (y - means[:, k]) / nu[k] * get_expert(spec.prompts[k].expert).derivative(u)
    columns = density + [df_dm * X[:, i] for i in range(spec.dim)]
    columns += [df_dm] if spec.prompts[k].intercept else []
    columns.append(density[1] * ((y - means[:, k]) ** 2 / nu[k] - 1.0) / (2.0 * nu[k]))
    return np.column_stack(columns)


def _check_several(spec: Spec, n_points: int, n_random: int, seed: int) -> DistinguishabilityResult:
    """Each prompt against the frozen expert (as a one-prompt setting), and every pair of prompts."""
    rng = np.random.default_rng(seed)
    parts, why, tol = {}, [], max(n_points, 4) * np.finfo(float).eps
    pre = spec.pretrained
    if pre is not None and pre.mean_from_data:
        why.append("the frozen expert is a model's predictions: Definition 1 needs its mean function, which the spec "
                   "does not have; the prompts against it are not tested")  # fmt: skip
    elif pre is not None:
        for k in range(spec.K):
            single = check_distinguishability(spec.single(k), n_points=n_points, n_random=n_random, seed=seed + k)
            parts[f"prompt {k + 1} vs f0"] = single.smallest_singular_value
            tol = max(tol, single.tolerance)
            why.append(f"prompt {k + 1} ({spec.prompts[k].expert}) vs f0: "
                       + ("distinguishable" if single.distinguishable else "NOT distinguishable"))  # fmt: skip
    truth = spec.truth_at(1000)
    for j in range(spec.K):
        for k in range(j + 1, spec.K):
            s, tol_jk = _normalised_singular_values(_pair_matrix(spec, j, k, truth, n_points, rng))
            parts[f"prompt {j + 1} vs prompt {k + 1}"] = float(s[-1])
            tol = max(tol, tol_jk)
            same = spec.prompts[j] == spec.prompts[k]
            why.append(
                f"prompt {j + 1} vs prompt {k + 1}: {'distinguishable' if s[-1] > tol_jk else 'NOT distinguishable'} "
                f"at the truth (normalised singular value {s[-1]:.2g})"
                + (": they share their structure, and would not be where their parameters coincide" if same else "")
            )
    if not parts:  # one prompt and no frozen expert: a single Gaussian regression, nothing to tell apart
        why.append(
            "one prompt and no frozen expert: a single Gaussian regression, with no second component to tell it "
            "apart from; Definition 1 does not apply (add [pretrained] or a second [[prompts]] table)"
        )
        verdict, worst, smallest = None, "", float("nan")
    else:
        worst = min(parts, key=parts.get)
        smallest = parts[worst]
        verdict = None if pre is not None and pre.mean_from_data else bool(smallest > tol)
    return DistinguishabilityResult(
        spec.name, verdict, smallest, tol, worst, proposition_1(spec), "; ".join(why), parts
    )


# -- strong identifiability ----------------------------------------------------------------------


@cache
def _phi_derivatives(expert: str):
    z = pt.vector("z")
    phi = get_expert(expert).tensor(z)
    d1 = pytensor.grad(phi.sum(), z)
    d2 = pytensor.grad(d1.sum(), z, disconnected_inputs="ignore")  # linear: phi' is a constant
    d1, d2 = (d + pt.zeros_like(z) for d in (d1, d2))  # constants broadcast to one value per point
    return pytensor.function([z], [d1, d2], mode="FAST_COMPILE", on_unused_input="ignore")


@dataclass(frozen=True)
class StrongIdentifiabilityResult:
    """The verdict of :func:`check_strong_identifiability`."""

    expert: str
    strongly_identifiable: bool
    smallest_singular_value: float
    tolerance: float
    zero_groups: tuple[str, ...]
    explanation: str


def check_strong_identifiability(
    expert: str, *, dim: int = 2, n_points: int = 4000, seed: int = 0
) -> StrongIdentifiabilityResult:
    """Definition 2, tested numerically (see the module docstring); derivatives by pytensor's autodiff.

    >>> [check_strong_identifiability(e).strongly_identifiable for e in ("tanh", "relu")]
    [True, False]
    """
    get_expert(expert)  # a clear error for unknown names
    rng = np.random.default_rng(seed)
    X1 = np.hstack([rng.uniform(-2, 2, size=(n_points, dim)), np.ones((n_points, 1))])
    k = dim + 1
    pairs = [(u, v) for u in range(k) for v in range(u, k)]
    groups: dict[str, list[np.ndarray]] = {"first derivatives": [], "second derivatives": [], "products": []}
    for _ in range(2):  # two distinct parameter points, together
        theta = rng.standard_normal(k)
        d1, d2 = _phi_derivatives(expert)(X1 @ theta)
        groups["first derivatives"] += [d1 * X1[:, u] for u in range(k)]
        groups["second derivatives"] += [d2 * X1[:, u] * X1[:, v] for u, v in pairs]
        groups["products"] += [d1**2 * X1[:, u] * X1[:, v] for u, v in pairs]
    zero = tuple(name for name, cols in groups.items() if all(np.allclose(c, 0.0) for c in cols))
    s, tol = _normalised_singular_values(np.column_stack([c for cols in groups.values() for c in cols]))
    verdict = s[-1] > tol and not zero
    if zero:
        why = (
            f"the {' and '.join(zero)} of {expert} vanish {'identically' if expert == 'linear' else 'almost everywhere'}"
            f" in (eta, b): the three groups cannot be linearly independent"
        )
        if expert == "linear":
            why += (
                "; a linear expert is linear in its parameters, so its second-order terms carry no "
                "information and the papers' rates for strongly identifiable experts do not apply"
            )
    elif verdict:
        why = (
            f"first derivatives, second derivatives and products of first derivatives of {expert} are "
            f"linearly independent (smallest normalised singular value {s[-1]:.2g}, tolerance {tol:.2g})"
        )
    else:
        why = f"a combination of the three groups of {expert} vanishes (normalised singular value {s[-1]:.2g})"
    return StrongIdentifiabilityResult(expert, bool(verdict), float(s[-1]), tol, zero, why)


# -- Fisher information --------------------------------------------------------------------------


@dataclass(frozen=True)
class FisherInformation:
    """The per-observation expected Fisher information at ``params`` and its spectrum."""

    spec: Spec = field(repr=False)
    params: dict = field(repr=False)
    matrix: np.ndarray = field(repr=False)
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray = field(repr=False)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    @property
    def condition_number(self) -> float:
        return float(self.eigenvalues[-1] / self.eigenvalues[0]) if self.eigenvalues[0] > 0 else float("inf")

    def asymptotic_sd(self, n: int = 1) -> dict[str, Any]:
        """Asymptotic standard deviations ``sqrt(diag(I^-1) / n)`` per parameter (and ``exp_tau``)."""
        sd = np.sqrt(np.diag(np.linalg.inv(self.matrix)) / n)
        out = self.spec.layout.unpack(sd, fill=np.nan)
        if "tau" in out:
            exp_tau = np.exp(np.asarray(self.params["tau"], float)) * out["tau"]
            out["exp_tau"] = float(exp_tau) if np.ndim(exp_tau) == 0 else exp_tau
        return out

    def flattest_direction(self, top: int = 3) -> list[tuple[str, float]]:
        """The parameters that load most on the eigenvector of the smallest eigenvalue."""
        v = self.eigenvectors[:, 0]
        order = np.argsort(-np.abs(v))[:top]
        return [(self.labels[i], float(v[i])) for i in order]


def fisher_information(
    spec: Spec | str, params: dict[str, Any] | None = None, *, n: int = 10_000, n_mc: int = 200_000, seed: int = 0
) -> FisherInformation:
    """The expected Fisher information at ``params`` (default: the spec's truth at ``n``).

    Monte Carlo over ``n_mc`` simulated observations of the compiled per-observation scores
    (:func:`bayescmoe.theory.information.expected_information`).
    """
    spec = load_spec(spec)
    params = spec.truth_at(n) if params is None else params
    matrix = expected_information(spec, params, n_mc=n_mc, seed=seed)
    w, V = np.linalg.eigh(matrix)
    return FisherInformation(spec, params, matrix, w, V)


def merge_direction(spec: Spec) -> np.ndarray:
    """u: the spec's eta-merge direction (unit length), else the normalised ones vector."""
    direction = next((s.unit_direction for s in spec.schedules if s.parameter == "eta"), None)
    return np.ones(spec.dim) / np.sqrt(spec.dim) if direction is None else np.asarray(direction)


def prompt_at(
    spec: Spec, base: dict[str, Any], delta: float, parameter: str = "eta", direction: np.ndarray | None = None
) -> dict[str, Any]:
    """``base`` with the prompt at distance ``delta`` from the pre-trained expert.

    ``parameter="eta"``: ``eta = eta0 + delta u`` (u: ``direction``, default :func:`merge_direction`)
    and ``nu`` = f0's variance; ``parameter="nu"``: ``eta = eta0`` and ``nu`` = f0's variance + delta.
    With a prompt intercept, ``b = b0``.  The gate's parameters are those of ``base``.
    """
    pre = spec.pretrained
    params = dict(base, eta=np.array(pre.eta), nu=_f0_variance(spec))
    if spec.prompt.intercept:
        params["b"] = pre.intercept
    if parameter == "eta":
        u = merge_direction(spec) if direction is None else np.asarray(direction)
        params["eta"] = params["eta"] + delta * u
    else:
        params["nu"] += delta
    return params


def delta_scan(
    spec: Spec | str,
    deltas: Sequence[float],
    *,
    parameter: str = "eta",
    n: int = 10_000,
    n_mc: int = 200_000,
    seed: int = 0,
) -> dict[str, Any]:
    """How the information's smallest eigenvalue and each asymptotic SD scale with Delta.

    The truth is the spec's at ``n`` with the prompt moved to distance Delta from the
    pre-trained expert: ``eta = eta0 + Delta u`` (u the spec's merge direction, else the
    normalised ones vector) and ``nu = nu0`` for ``parameter="eta"``; ``nu = nu0 + Delta`` and
    ``eta = eta0`` for ``parameter="nu"`` (nu0 is f0's variance).

    Returns a dict with ``deltas``, ``smallest_eigenvalue``, ``sd`` (per parameter, at ``n``
    observations; vectors by the root mean square of their coordinates) and ``slopes``: the
    least-squares slopes of log SD (and log smallest eigenvalue) on log Delta.
    """
    spec = load_spec(spec).require_one_prompt("the Delta scan")
    if parameter not in ("eta", "nu"):
        raise ValueError(f"parameter must be 'eta' or 'nu', got {parameter!r}")
    base = spec.truth_at(n)
    rows = []
    for delta in deltas:
        params = prompt_at(spec, base, delta, parameter)
        info = fisher_information(spec, params, n_mc=n_mc, seed=seed)
        rows.append((info.eigenvalues[0], _summary_sd(info.asymptotic_sd(n))))
    logd = np.log(np.asarray(deltas, dtype=float))
    smallest = np.array([r[0] for r in rows])
    sd = {k: np.array([r[1][k] for r in rows]) for k in rows[0][1]}
    slopes = {k: float(np.polyfit(logd, np.log(v), 1)[0]) for k, v in sd.items()}
    slopes["smallest_eigenvalue"] = float(np.polyfit(logd, np.log(np.clip(smallest, 1e-300, None)), 1)[0])
    return {
        "deltas": np.asarray(deltas, dtype=float),
        "smallest_eigenvalue": smallest,
        "sd": sd,
        "slopes": slopes,
        "parameter": parameter,
        "n": n,
    }
