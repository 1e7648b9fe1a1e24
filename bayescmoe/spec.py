"""Model specifications: pure data, loaded from the TOML contract of MODEL.md section 2.

A :class:`Spec` fixes everything about a setting except the data: the dimension,
the gating, the frozen pre-trained expert, the prompt's mean function, how
covariates are drawn, the true parameters (possibly moving with ``n`` through
schedules) and the compact box searched by the MLE.  This module knows nothing
of PyMC; loading a spec never executes code.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from bayescmoe.exceptions import SpecError
from bayescmoe.experts import EXPERTS
from bayescmoe.families import FAMILIES

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

Gating = Literal["softmax", "constant"]
GATINGS = ("constant", "softmax")
DISTRIBUTIONS = ("normal", "uniform")
#: The box searched by the MLE when a spec's ``[bounds]`` leaves a parameter out.
DEFAULT_BOUNDS: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "beta": (-10.0, 10.0),
        "tau": (-10.0, 10.0),
        "eta": (-10.0, 10.0),
        "b": (-10.0, 10.0),
        "nu": (1e-3, 100.0),
        "lam": (1e-3, 0.999),
    }
)
VECTOR_PARAMS = ("beta", "eta")


@dataclass(frozen=True)
class Pretrained:
    """The frozen pre-trained expert ``f0(y | phi0(eta0 . x + b0), s0)``: all known."""

    family: str
    expert: str
    eta: tuple[float, ...]
    intercept: float = 0.0
    scale: float = 1.0
    df: float | None = None


@dataclass(frozen=True)
class Prompt:
    """The trainable Gaussian prompt's mean function and whether it has an intercept ``b``."""

    expert: str
    intercept: bool = False


@dataclass(frozen=True)
class Covariates:
    """How :func:`bayescmoe.simulate` draws X: uniform on ``[low, high]^d`` or standard normal."""

    distribution: str = "uniform"
    low: float = -1.0
    high: float = 1.0


@dataclass(frozen=True)
class Schedule:
    """A true parameter that moves with ``n``.

    ``merge``: ``eta*(n) = eta0 + c n^-kappa u`` or ``nu*(n) = s0 + c n^-kappa``;
    ``vanish``: ``lam*(n) = c n^-kappa`` (constant gating), or the softmax gate at x = 0,
    ``sigmoid(tau*(n)) = c n^-kappa`` (so that with ``beta* = 0`` it matches a constant ``lam*``).
    """

    parameter: str
    form: str
    c: float
    kappa: float
    direction: tuple[float, ...] | None = None  # as written in the spec; see unit_direction

    @property
    def unit_direction(self) -> np.ndarray:
        """``u``: the direction normalised to unit length (``eta`` schedules only)."""
        u = np.array(self.direction)
        return u / np.linalg.norm(u)


@dataclass(frozen=True)
class Layout:
    """Where each parameter lives in the flat vector the optimizers work on.

    >>> lay = Layout((("beta", 2), ("tau", 0), ("nu", 0)))
    >>> lay.size, lay.names
    (4, ('beta', 'tau', 'nu'))
    >>> lay.unpack(np.array([1.0, 2.0, 3.0, 4.0]))["tau"]
    3.0
    """

    entries: tuple[tuple[str, int], ...]  # (name, length); length 0 marks a scalar

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.entries)

    @property
    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name, length in self.entries:
            stop = start + max(length, 1)
            out[name] = slice(start, stop)
            start = stop
        return out

    @property
    def size(self) -> int:
        return sum(max(length, 1) for _, length in self.entries)

    def pack(self, params: Mapping[str, Any]) -> np.ndarray:
        """Flatten a parameter dict into a vector; raises on missing names or wrong lengths."""
        vec = np.empty(self.size)
        for name, sl in zip(self.names, self.slices.values()):
            if name not in params:
                raise SpecError(f"parameter {name!r} is missing; expected {', '.join(self.names)}")
            value = np.asarray(params[name], dtype=float).reshape(-1)
            if value.size != sl.stop - sl.start:
                raise SpecError(f"parameter {name!r} has {value.size} values; expected {sl.stop - sl.start}")
            vec[sl] = value
        return vec

    def unpack(self, vec: np.ndarray) -> dict[str, Any]:
        """The inverse of :meth:`pack`: vectors as arrays, scalars as floats."""
        vec = np.asarray(vec, dtype=float)
        return {
            name: (float(vec[sl][0]) if length == 0 else vec[sl].copy())
            for (name, length), sl in zip(self.entries, self.slices.values())
        }


@dataclass(frozen=True)
class Spec:
    """A named setting of the contaminated mixture of experts (MODEL.md section 2).

    Build one with :func:`load_spec` (a name from ``models/`` or a TOML path) or
    :func:`spec_from_dict`; it is immutable and validated.
    """

    name: str
    dim: int
    gating: Gating
    pretrained: Pretrained
    prompt: Prompt
    covariates: Covariates
    truth: Mapping[str, Any]
    bounds: Mapping[str, tuple[float, float]]
    schedules: tuple[Schedule, ...] = ()
    description: str = ""
    paper: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    paper_source: str = ""
    source: str = field(default="<dict>", compare=False)

    # -- parameters ---------------------------------------------------------------------
    @property
    def layout(self) -> Layout:
        """The estimated parameters in MODEL.md order: ``beta, tau | lam, eta, [b], nu``."""
        gate = (("beta", self.dim), ("tau", 0)) if self.gating == "softmax" else (("lam", 0),)
        prompt = (("eta", self.dim),) + ((("b", 0),) if self.prompt.intercept else ())
        return Layout(gate + prompt + (("nu", 0),))

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.layout.names

    @property
    def n_params(self) -> int:
        return self.layout.size

    def bounds_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds aligned with :attr:`layout`."""
        lo = {k: np.full(max(n, 1), self.bounds[k][0]) for k, n in self.layout.entries}
        hi = {k: np.full(max(n, 1), self.bounds[k][1]) for k, n in self.layout.entries}
        return self.layout.pack(lo), self.layout.pack(hi)

    def with_bounds(self, bounds: Mapping[str, Any] | None) -> Spec:
        """A copy of the spec whose box is ``bounds`` (a dict of ``[low, high]``) over the spec's own."""
        if not bounds:
            return self
        pairs = lambda v: list(v) if isinstance(v, (list, tuple, np.ndarray)) else v  # noqa: E731
        merged = {k: list(v) for k, v in self.bounds.items()} | {k: pairs(v) for k, v in bounds.items()}
        table = _Table("bounds argument", "", {"bounds": merged}, ("bounds",))
        return replace(self, bounds=MappingProxyType(_bounds(table, self.gating, self.prompt)))

    @property
    def covariate_names(self) -> tuple[str, ...]:
        return tuple(f"x{i + 1}" for i in range(self.dim))

    @property
    def labels(self) -> tuple[str, ...]:
        """One label per entry of the flat parameter vector, e.g. ``beta[x1]``, ``tau``."""
        out: list[str] = []
        for name, length in self.layout.entries:
            out += [name] if length == 0 else [f"{name}[{c}]" for c in self.covariate_names]
        return tuple(out)

    # -- the truth ------------------------------------------------------------------------
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
                truth["eta"] = np.array(self.pretrained.eta) + shift * sch.unit_direction
            elif sch.parameter == "nu":
                truth["nu"] = self.pretrained.scale + shift
            else:  # lam or tau, vanish
                what = "lam*(n)" if sch.parameter == "lam" else "sigmoid(tau*(n))"
                if not 0.0 < shift < 1.0:
                    raise SpecError(
                        f"{self.source}: {what} = c n^-kappa = {shift:.4g} at n = {n} is not in "
                        f"(0, 1); use a larger n or a smaller c"
                    )
                truth[sch.parameter] = shift if sch.parameter == "lam" else float(np.log(shift / (1.0 - shift)))
        return {k: truth[k] for k in self.param_names}

    # -- identity -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The spec in the TOML layout (plain lists and numbers), for JSON output and hashing."""
        pre = self.pretrained
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "dim": self.dim,
            "gating": self.gating,
            "pretrained": {
                "family": pre.family,
                "expert": pre.expert,
                "eta": list(pre.eta),
                "intercept": pre.intercept,
                "scale": pre.scale,
                **({"df": pre.df} if pre.df is not None else {}),
            },
            "prompt": {"expert": self.prompt.expert, "intercept": self.prompt.intercept},
            "covariates": {"distribution": self.covariates.distribution}
            | (
                {"low": self.covariates.low, "high": self.covariates.high}
                if self.covariates.distribution == "uniform"
                else {}
            ),
            "truth": {k: list(v) if isinstance(v, tuple) else v for k, v in self.truth.items()},
            "bounds": {k: list(v) for k, v in self.bounds.items()},
        }
        if self.paper:
            out["paper"] = {"source": self.paper_source, "rates": dict(self.paper)}
        if self.schedules:
            out["truth"]["schedule"] = [
                {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(s).items() if v is not None}
                for s in self.schedules
            ]
        return out

    def digest(self) -> str:
        """A short hash of everything that defines the setting (not its file path).

        >>> len(load_spec("softmax_distinguishable").digest())
        16
        """
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------
# loading and validation


class _Table:
    """Typed access to one TOML table, with errors that name the file, the key and the fix."""

    def __init__(self, source: str, path: str, data: Any, allowed: tuple[str, ...]):
        if not isinstance(data, dict):
            raise SpecError(f"{source}: {path or 'the file'} must be a table, got {type(data).__name__}")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            where = f"[{path}]" if path else "the top level"
            raise SpecError(
                f"{source}: unknown key {unknown[0]!r} in {where}; allowed keys: {', '.join(sorted(allowed))}"
            )
        self.source, self.path, self.data = source, path, data

    def where(self, key: str) -> str:
        return f"{self.source}: key '{self.path + '.' if self.path else ''}{key}'"

    def fail(self, key: str, problem: str) -> SpecError:
        return SpecError(f"{self.where(key)} {problem}")

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise self.fail(key, "is missing")
            return default
        return self.data[key]

    def choice(self, key: str, choices, default: Any = ...) -> str:
        value = self.get(key, default)
        if value not in choices:
            raise self.fail(key, f"is {value!r}; allowed values: {', '.join(sorted(choices))}")
        return value

    def number(self, key: str, default: Any = ..., *, low=None, high=None, open_low=True, open_high=True) -> float:
        value = self.get(key, default)
        return _number(self, key, value, low, high, open_low, open_high)

    def vector(self, key: str, length: int, default: Any = ...) -> tuple[float, ...]:
        value = self.get(key, default)
        if not isinstance(value, list) or len(value) != length:
            raise self.fail(key, f"must be a list of {length} numbers (one per covariate), got {value!r}")
        return tuple(_number(self, key, v, None, None, True, True) for v in value)

    def boolean(self, key: str, default: Any = ...) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {value!r}")
        return value

    def string(self, key: str, default: Any = ...) -> str:
        value = self.get(key, default)
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {value!r}")
        return value

    def sub(self, key: str, allowed: tuple[str, ...], default: Any = ...) -> _Table:
        path = f"{self.path}.{key}" if self.path else key
        return _Table(self.source, path, self.get(key, default), allowed)


def _number(table: _Table, key, value, low, high, open_low, open_high) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise table.fail(key, f"must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise table.fail(key, f"must be finite, got {value!r}")
    if low is not None and (value <= low if open_low else value < low):
        raise table.fail(key, f"must be {'>' if open_low else '>='} {low:g}, got {value:g}")
    if high is not None and (value >= high if open_high else value > high):
        raise table.fail(key, f"must be {'<' if open_high else '<='} {high:g}, got {value:g}")
    return value


_TOP = ("name", "description", "dim", "gating", "pretrained", "prompt", "covariates", "truth", "bounds", "paper")
#: The losses of MODEL.md section 3, by the names used in tables, stores and [paper] rates.
LOSSES = ("beta", "tau", "exp_tau", "lam", "eta", "b", "nu", "density")


def spec_from_dict(data: Mapping[str, Any], source: str = "<dict>", default_name: str = "custom") -> Spec:
    """Validate a parsed TOML document (a dict in the layout of MODEL.md section 2)."""
    top = _Table(source, "", dict(data), _TOP)
    dim = top.get("dim")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise top.fail("dim", f"must be a positive integer, got {dim!r}")
    gating = top.choice("gating", GATINGS)
    prompt = _prompt(top)
    pretrained = _pretrained(top, dim)
    schedules = _schedules(top, dim, gating, pretrained)
    bounds = _bounds(top, gating, prompt)
    truth = _truth(top, dim, gating, prompt, schedules, bounds)
    return Spec(
        name=top.string("name", default_name),
        description=top.string("description", ""),
        dim=dim,
        gating=gating,
        pretrained=pretrained,
        prompt=prompt,
        covariates=_covariates(top),
        truth=MappingProxyType(truth),
        bounds=MappingProxyType(bounds),
        schedules=schedules,
        **_paper(top),
        source=source,
    )


def _paper(top: _Table) -> dict[str, Any]:
    """The optional [paper] table: the empirical rates a paper reported for this setting."""
    if not top.has("paper"):
        return {}
    t = top.sub("paper", ("source", "rates"))
    rates = t.get("rates")
    if not isinstance(rates, dict):
        raise t.fail("rates", 'must be a table such as { beta = "0.45", exp_tau = "0.23" }')
    for key, value in rates.items():
        if key not in LOSSES:
            raise t.fail("rates", f"has unknown loss {key!r}; allowed: {', '.join(LOSSES)}")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise t.fail("rates", f'value of {key!r} must be a number or a string such as "0.37-0.39"')
    return {"paper": MappingProxyType({k: str(v) for k, v in rates.items()}), "paper_source": t.string("source", "")}


def _pretrained(top: _Table, dim: int) -> Pretrained:
    t = top.sub("pretrained", ("family", "expert", "eta", "intercept", "scale", "df"))
    family = t.choice("family", FAMILIES)
    if FAMILIES[family].needs_df:
        df = t.number("df", low=0.0)
    elif t.has("df"):
        raise t.fail("df", f"applies to student_t only, not to family {family!r}; remove it")
    else:
        df = None
    return Pretrained(
        family=family,
        expert=t.choice("expert", EXPERTS),
        eta=t.vector("eta", dim),
        intercept=t.number("intercept", 0.0),
        scale=t.number("scale", low=0.0),
        df=df,
    )


def _prompt(top: _Table) -> Prompt:
    t = top.sub("prompt", ("expert", "intercept"))
    return Prompt(expert=t.choice("expert", EXPERTS), intercept=t.boolean("intercept", False))


def _covariates(top: _Table) -> Covariates:
    t = top.sub("covariates", ("distribution", "low", "high"), {"distribution": "uniform"})
    dist = t.choice("distribution", DISTRIBUTIONS)
    if dist == "normal":
        for key in ("low", "high"):
            if t.has(key):
                raise t.fail(key, "applies to the uniform distribution only; remove it")
        return Covariates("normal", float("nan"), float("nan"))
    low, high = t.number("low", -1.0), t.number("high", 1.0)
    if not low < high:
        raise t.fail("high", f"must exceed low ({low:g}), got {high:g}")
    return Covariates("uniform", low, high)


def _schedules(top: _Table, dim: int, gating: str, pre: Pretrained) -> tuple[Schedule, ...]:
    truth = top.get("truth") if isinstance(top.get("truth"), dict) else {}
    raw = truth.get("schedule", [])
    if not isinstance(raw, list):
        raise SpecError(f"{top.source}: truth.schedule must be an array of tables ([[truth.schedule]])")
    out, seen = [], set()
    for i, item in enumerate(raw):
        t = _Table(top.source, f"truth.schedule[{i}]", item, ("parameter", "form", "c", "kappa", "direction"))
        param = t.choice("parameter", ("eta", "nu", "lam", "tau"))
        if param in seen:
            raise t.fail("parameter", f"{param!r} has a schedule already; give one schedule per parameter")
        seen.add(param)
        form = t.choice("form", ("vanish",) if param in ("lam", "tau") else ("merge",))
        if param == "lam" and gating != "constant":
            raise t.fail("parameter", "'lam' exists only with gating = \"constant\"")
        if param == "tau" and gating != "softmax":
            raise t.fail("parameter", "'tau' exists only with gating = \"softmax\"")
        if param == "nu" and pre.family != "normal":
            raise t.fail("parameter", f"a merge of 'nu' needs the normal pre-trained family, not {pre.family!r}")
        c = t.number("c", low=0.0) if param in ("nu", "lam", "tau") else t.number("c")
        kappa = t.number("kappa", low=0.0, open_low=False)
        direction = None
        if param == "eta":
            direction = t.vector("direction", dim)
            if not any(direction):
                raise t.fail("direction", "must not be the zero vector")
        elif t.has("direction"):
            raise t.fail("direction", f"applies to 'eta' only, not to {param!r}; remove it")
        out.append(Schedule(param, form, c, kappa, direction))
    return tuple(out)


def _bounds(top: _Table, gating: str, prompt: Prompt) -> dict[str, tuple[float, float]]:
    names = ("beta", "tau") if gating == "softmax" else ("lam",)
    names += ("eta",) + (("b",) if prompt.intercept else ()) + ("nu",)
    t = top.sub("bounds", names, {})
    out = {}
    for name in names:
        value = t.get(name, list(DEFAULT_BOUNDS[name]))
        if not isinstance(value, list) or len(value) != 2:
            raise t.fail(name, f"must be a pair [low, high], got {value!r}")
        lo, hi = (_number(t, name, v, None, None, True, True) for v in value)
        if not lo < hi:
            raise t.fail(name, f"must have low < high, got [{lo:g}, {hi:g}]")
        if name == "nu" and lo <= 0.0:
            raise t.fail(name, f"must have a positive lower bound (nu is a variance), got {lo:g}")
        if name == "lam" and not (0.0 < lo and hi < 1.0):
            raise t.fail(name, f"must lie inside (0, 1), got [{lo:g}, {hi:g}]")
        out[name] = (lo, hi)
    return out


def _truth(top, dim, gating, prompt, schedules, bounds) -> dict[str, Any]:
    allowed = ("beta", "tau", "lam", "eta", "b", "nu", "schedule")
    t = top.sub("truth", allowed)
    scheduled = {s.parameter for s in schedules}
    names = ("beta", "tau") if gating == "softmax" else ("lam",)
    names += ("eta",) + (("b",) if prompt.intercept else ()) + ("nu",)
    for key in set(allowed) - set(names) - {"schedule"}:
        if t.has(key):
            why = {"b": "prompt.intercept is false", "lam": "gating is softmax"}.get(key, "gating is constant")
            raise t.fail(key, f"is not a parameter of this spec ({why}); remove it")
    out: dict[str, Any] = {}
    for name in names:
        if name in scheduled and not t.has(name):
            continue  # the schedule defines it
        if name in VECTOR_PARAMS:
            out[name] = t.vector(name, dim)
        elif name == "nu":
            out[name] = t.number(name, low=0.0)
        elif name == "lam":
            out[name] = t.number(name, low=0.0, high=1.0)
        else:
            out[name] = t.number(name)
        if name not in scheduled:
            lo, hi = bounds[name]
            values = np.atleast_1d(out[name])
            if np.any(values < lo) or np.any(values > hi):
                raise t.fail(name, f"lies outside its bounds [{lo:g}, {hi:g}]; widen [bounds] or move the truth")
    return out


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
