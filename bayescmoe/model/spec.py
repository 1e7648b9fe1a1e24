"""Model specifications: pure data, loaded from the TOML contract of MODEL.md sections 2 and 8.

A :class:`Spec` fixes everything about a setting except the data: the dimension, the gating, the
frozen pre-trained expert (a formula, predictions that come with the data, or none at all), the
prompts' mean functions (one, or K >= 1), how covariates are drawn, the true parameters (possibly
moving with ``n`` through schedules) and the compact box searched by the MLE.  This module knows
nothing of PyMC; loading a spec (:func:`load_spec`, validated by :mod:`bayescmoe.model.spec_parse`) never
executes code.  The parts of a spec live in :mod:`bayescmoe.model.spec_parts`; the parser imports them, and this
module imports the parser (one direction, no cycle).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from bayescmoe.exceptions import SpecError
from bayescmoe.model.layout import Layout
from bayescmoe.model.spec_parse import Table, parse_bounds, spec_fields
from bayescmoe.model.spec_parts import (
    DEFAULT_BOUNDS,
    LOSSES,
    Covariates,
    Gating,
    Pretrained,
    Prompt,
    Schedule,
)

__all__ = [
    "Spec",
    "Pretrained",
    "Prompt",
    "Covariates",
    "Schedule",
    "Layout",
    "load_spec",
    "list_specs",
    "spec_from_dict",
    "DEFAULT_BOUNDS",
    "LOSSES",
]


@dataclass(frozen=True)
class Spec:
    """A named setting of the contaminated mixture of experts (MODEL.md sections 2 and 8).

    Build one with :func:`load_spec` (a name from ``models/`` or a TOML path) or :func:`spec_from_dict`;
    it is immutable and validated.  ``prompts`` holds K >= 1 prompts; ``multi`` says the spec was written
    with ``[[prompts]]``, whose parameters carry a leading prompt axis even when K = 1 (section 8), where
    ``[prompt]`` keeps section 1's shapes.  ``pretrained`` is ``None`` for the plain softmax-gated mixture of
    experts, in which prompt 1 is the reference of the gate.
    """

    name: str
    dim: int
    gating: Gating
    pretrained: Pretrained | None
    prompts: tuple[Prompt, ...]
    covariates: Covariates
    truth: Mapping[str, Any]
    bounds: Mapping[str, tuple[float, float]]
    schedules: tuple[Schedule, ...] = ()
    description: str = ""
    paper: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    paper_source: str = ""
    source: str = field(default="<dict>", compare=False)
    multi: bool = False

    # -- structure ----------------------------------------------------------------------------
    @property
    def K(self) -> int:
        """The number of prompts."""
        return len(self.prompts)

    @property
    def K_true(self) -> int:
        """K*, the number of true prompts: K, or fewer in an over-specified spec (MODEL.md section 10)."""
        if not self.multi:
            return 1
        rows = next(np.shape(v) for k, v in self.truth.items() if k != "schedule")
        return int(rows[0]) if rows else self.K

    @property
    def overfit(self) -> bool:
        """Whether the truth has fewer prompts than the model (K* < K): its losses are the Voronoi losses."""
        return self.K_true < self.K

    def truth_spec(self) -> Spec:
        """The spec of the truth: ``self``, or for an over-specified spec its first K* prompts (what
        :func:`~bayescmoe.simulate` draws from).

        >>> spec = load_spec("overfit_moe_k2_on_1")
        >>> spec.K, spec.K_true, spec.truth_spec().K
        (2, 1, 1)
        """
        return self.first_prompts(self.K_true, f"{self.name}[truth]") if self.overfit else self

    @property
    def prompt(self) -> Prompt:
        """The prompt of a one-prompt spec."""
        if self.K != 1:
            raise SpecError(f"{self.name} has {self.K} prompts; use spec.prompts")
        return self.prompts[0]

    @property
    def has_pretrained(self) -> bool:
        return self.pretrained is not None

    @property
    def prompt_names(self) -> tuple[str, ...]:
        """The coordinates of the PyMC dim ``prompt``: ``p1`` .. ``pK``."""
        return tuple(f"p{k + 1}" for k in range(self.K))

    @property
    def covariate_names(self) -> tuple[str, ...]:
        return tuple(f"x{i + 1}" for i in range(self.dim))

    def exchangeable(self) -> list[list[int]]:
        """Groups of prompts (0-based) with the same structure (expert, intercept): their labels can swap."""
        groups: dict[Prompt, list[int]] = {}
        for k, prompt in enumerate(self.prompts):
            groups.setdefault(prompt, []).append(k)
        return [g for g in groups.values() if len(g) > 1]

    def require_one_prompt(self, what: str) -> Spec:
        """``self``, if it has one prompt written with [prompt] and a frozen expert with a formula mean; else a
        SpecError saying that ``what`` needs them (the setting of MODEL.md sections 1-5)."""
        if self.multi or self.pretrained is None or self.pretrained.mean_from_data:
            has = (
                "no frozen expert" if self.pretrained is None
                else "a frozen expert given by data" if self.pretrained.mean_from_data
                else f"{self.K} prompt(s) written as [[prompts]]"
            )  # fmt: skip
            raise SpecError(
                f"{what} is for one prompt ([prompt]) beside a frozen expert with a formula mean; {self.name} has {has}"
            )
        return self

    def smaller(self) -> Spec | None:
        """The spec without its last prompt (the nested model of one prompt fewer), written with [[prompts]];
        None where there is no such model (one prompt and no frozen expert, or a single [prompt] beside f0:
        its nested model is the frozen expert alone, which has no parameter).

        >>> load_spec("laplace_two_prompts").smaller().K
        1
        """
        if self.K == 1:
            return None
        return self.first_prompts(self.K - 1, f"{self.name}[K={self.K - 1}]")

    def first_prompts(self, keep: int, name: str | None = None) -> Spec:
        """The spec of the first ``keep`` prompts, written with [[prompts]], the truth cut to as many rows
        (named ``name``, default ``"<name>[K=<keep>]"``).

        >>> load_spec("overfit_moe_k3_on_2").first_prompts(2).name
        'overfit_moe_k3_on_2[K=2]'
        """
        if not 1 <= keep <= self.K:
            raise SpecError(f"{self.name} has {self.K} prompts; cannot keep the first {keep}")
        name = f"{self.name}[K={keep}]" if name is None else name
        truth = {}
        for key, value in self.truth.items():
            rows = np.asarray(value, dtype=float)
            truth[key] = rows[:keep] if rows.ndim else rows
        if "lam" in truth and not self.has_pretrained:
            truth["lam"] = np.r_[1.0 - truth["lam"][1:].sum(), truth["lam"][1:]]
        return replace(
            self,
            name=name,
            prompts=self.prompts[:keep],
            truth=MappingProxyType(truth),
            schedules=tuple(s for s in self.schedules if s.prompt <= keep),
            multi=True,
        )

    def single(self, k: int) -> Spec:
        """Prompt ``k`` (0-based) alone with the frozen expert, as a one-prompt spec (section 1) at the truth
        at n = 1000 (schedules applied, then dropped): the setting in which Definition 1 and the local
        theory of one prompt apply to it."""
        if self.pretrained is None or self.pretrained.mean_from_data:
            raise SpecError(f"{self.name}: a one-prompt view needs a frozen expert whose mean is a formula")
        truth, prompt = self.truth_at(1000), self.prompts[k]
        row = lambda name: np.asarray(truth[name], float).reshape(self.K, -1)[k]  # noqa: E731
        names = ["beta", "tau"] if self.gating == "softmax" else ["lam"]
        names += ["eta"] + (["b"] if prompt.intercept else []) + ["nu"]
        data = self.to_dict()
        data.pop("prompts", None)
        data["prompt"] = {"expert": prompt.expert, "intercept": prompt.intercept}
        data["truth"] = {n: (row(n).tolist() if n in ("beta", "eta") else float(row(n)[0])) for n in names}
        data["bounds"] = {n: v for n, v in data["bounds"].items() if n in names}
        data["name"] = f"{self.name}[p{k + 1}]"
        return spec_from_dict(data, source=f"{self.source} (prompt {k + 1} alone)")

    # -- parameters -----------------------------------------------------------------------------
    @cached_property
    def layout(self) -> Layout:
        """The parameters in MODEL.md order: ``beta, tau | lam, eta, [b], nu`` (section 8: per prompt)."""
        softmax = self.gating == "softmax"
        intercepts = [p.intercept for p in self.prompts]
        if not self.multi:
            gate = (("beta", self.dim), ("tau", 0)) if softmax else (("lam", 0),)
            prompt = (("eta", self.dim),) + ((("b", 0),) if intercepts[0] else ())
            return Layout(gate + prompt + (("nu", 0),))
        K, d = self.K, self.dim
        gate = (("beta", (K, d)), ("tau", (K,))) if softmax else (("lam", (K,)),)
        prompt = (("eta", (K, d)),) + ((("b", (K,)),) if any(intercepts) else ())
        fixed, remainder = [], ()
        if not self.has_pretrained and softmax:  # prompt 1 is the gate's reference: a_1(x) = 0
            fixed += [
                ("beta", tuple(np.arange(K * d) < d), tuple(np.zeros(K * d))),
                ("tau", tuple(np.arange(K) < 1), tuple(np.zeros(K))),
            ]
        elif not self.has_pretrained:
            remainder = ("lam",)
        if any(intercepts):
            fixed.append(("b", tuple(not i for i in intercepts), tuple(np.zeros(K))))
        return Layout(gate + prompt + (("nu", (K,)),), tuple(fixed), remainder)

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.layout.names

    @property
    def n_params(self) -> int:
        """The number of estimated parameters (entries the model fixes are not counted)."""
        return self.layout.size

    def bounds_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds aligned with the estimated entries of :attr:`layout`."""
        sizes = {name: sl.stop - sl.start for name, sl in self.layout.slices.items()}
        lo = np.concatenate([np.full(sizes[k], self.bounds[k][0]) for k in self.param_names])
        hi = np.concatenate([np.full(sizes[k], self.bounds[k][1]) for k in self.param_names])
        return lo, hi

    def with_bounds(self, bounds: Mapping[str, Any] | None) -> Spec:
        """A copy of the spec whose box is ``bounds`` (a dict of ``[low, high]``) over the spec's own."""
        if not bounds:
            return self
        pairs = lambda v: list(v) if isinstance(v, (list, tuple, np.ndarray)) else v  # noqa: E731
        merged = {k: list(v) for k, v in self.bounds.items()} | {k: pairs(v) for k, v in bounds.items()}
        table = Table("bounds argument", "", {"bounds": merged}, ("bounds",))
        return replace(self, bounds=MappingProxyType(parse_bounds(table, self.gating, self.prompts)))

    @property
    def labels(self) -> tuple[str, ...]:
        """One label per estimated entry, e.g. ``beta[x1]``, ``tau``, ``beta[p2, x1]``, ``nu[p1]``."""
        return self.layout.labels(self.covariate_names, self.prompt_names if self.multi else None)

    # -- the truth ------------------------------------------------------------------------------
    def truth_at(self, n: int) -> dict[str, Any]:
        """The true parameters at sample size ``n``, schedules applied.

        >>> spec = load_spec("softmax_eta_merging")
        >>> t = spec.truth_at(10_000)
        >>> bool(np.isclose(np.linalg.norm(t["eta"] - np.array(spec.pretrained.eta)),
        ...                 spec.schedules[0].c * 10_000 ** -spec.schedules[0].kappa))
        True
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise SpecError(f"n must be a positive integer, got {n!r}")
        truth = {k: (np.array(v) if isinstance(v, tuple) else v) for k, v in self.truth.items()}
        for sch in self.schedules:
            shift = sch.c * float(n) ** (-sch.kappa)
            if sch.parameter == "eta":
                value = np.array(self.pretrained.eta) + shift * sch.unit_direction
            elif sch.parameter == "nu":
                value = self.pretrained.scale + shift
            else:  # lam or tau, vanish
                what = "lam*(n)" if sch.parameter == "lam" else "sigmoid(tau*(n))"
                if not 0.0 < shift < 1.0:
                    raise SpecError(
                        f"{self.source}: {what} = c n^-kappa = {shift:.4g} at n = {n} is not in "
                        f"(0, 1); use a larger n or a smaller c"
                    )
                value = shift if sch.parameter == "lam" else float(np.log(shift / (1.0 - shift)))
            if self.multi:
                truth[sch.parameter] = np.array(truth[sch.parameter], dtype=float)
                truth[sch.parameter][sch.prompt - 1] = value
            else:
                truth[sch.parameter] = value
        if self.multi and "lam" in truth and not self.has_pretrained:
            truth["lam"] = np.r_[1.0 - np.sum(truth["lam"][1:]), truth["lam"][1:]]
        return {k: truth[k] for k in self.param_names}

    # -- identity -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The spec in the TOML layout (plain lists and numbers), for JSON output and hashing."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "dim": self.dim,
            "gating": self.gating,
        }
        if self.pretrained is not None:
            out["pretrained"] = self.pretrained.to_dict()
        if self.multi:
            out["prompts"] = [{"expert": p.expert, "intercept": p.intercept} for p in self.prompts]
        else:
            out["prompt"] = {"expert": self.prompt.expert, "intercept": self.prompt.intercept}
        cov = self.covariates
        out["covariates"] = {"distribution": cov.distribution} | (
            {"low": cov.low, "high": cov.high} if cov.distribution == "uniform" else {}
        )
        out["truth"] = {k: _plain(v) for k, v in self.truth.items()}
        out["bounds"] = {k: list(v) for k, v in self.bounds.items()}
        if self.paper:
            out["paper"] = {"source": self.paper_source, "rates": dict(self.paper)}
        if self.schedules:
            out["truth"]["schedule"] = [s.to_dict(self.multi) for s in self.schedules]
        return out

    def digest(self) -> str:
        """A short hash of everything that defines the setting (not its file path).

        >>> len(load_spec("softmax_distinguishable").digest())
        16
        """
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def spec_from_dict(data: Mapping[str, Any], source: str = "<dict>", default_name: str = "custom") -> Spec:
    """Validate a parsed TOML document (a dict in the layout of MODEL.md sections 2 and 8)."""
    return Spec(**spec_fields(data, source=source, default_name=default_name))


# ---------------------------------------------------------------------------------------
# finding specs


def _models_dir():
    return resources.files("bayescmoe.models")


def list_specs() -> list[str]:
    """Names of the specs shipped in ``models/``.

    >>> "softmax_distinguishable" in list_specs()
    True
    """
    return sorted(p.name[:-5] for p in _models_dir().iterdir() if p.name.endswith(".toml"))


def load_spec(spec: str | Path | Spec) -> Spec:
    """Load a spec by name (from ``models/``) or from a TOML file path, and validate it.

    Parameters
    ----------
    spec : str, Path or Spec
        A name such as ``"softmax_distinguishable"``, a path to a ``.toml`` file, or
        an already loaded :class:`Spec` (returned as is).

    Raises
    ------
    SpecError
        If the file cannot be found or read, is not valid TOML, or breaks the contract;
        the message names the file, the key and the allowed values.
    """
    if isinstance(spec, Spec):
        return spec
    text = str(spec)
    as_path = Path(text)
    if isinstance(spec, Path) or text.endswith(".toml") or "/" in text or as_path.exists():
        if not as_path.is_file():
            raise SpecError(
                f"no spec file at {text!r}; give a path to a .toml file or one of: {', '.join(list_specs())}"
            )
        try:
            content = as_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise SpecError(f"cannot read spec file {text!r}: {err}") from None
        source, stem = text, as_path.stem
    else:
        entry = _models_dir() / f"{text}.toml"
        if not entry.is_file():
            raise SpecError(
                f"unknown spec {text!r}; choose one of {', '.join(list_specs())} or give a path to a .toml file"
            )
        content, source, stem = entry.read_text(encoding="utf-8"), f"models/{text}.toml", text
    try:
        data = tomllib.loads(content)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{source}: malformed TOML: {err}") from None
    return spec_from_dict(data, source=source, default_name=stem)
