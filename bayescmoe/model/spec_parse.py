"""Loading and validating specs: the TOML contract of MODEL.md sections 2 and 8 (pure data, no code runs).

Every problem is a :class:`~bayescmoe.exceptions.SpecError` naming the file, the key and the
allowed values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from bayescmoe.exceptions import SpecError
from bayescmoe.model.experts import EXPERTS
from bayescmoe.model.families import FAMILIES
from bayescmoe.model.spec_parts import DEFAULT_BOUNDS, LOSSES, Covariates, Pretrained, Prompt, Schedule

#: Internal: the public doors are bayescmoe.model.spec.load_spec and spec_from_dict, which build the Spec.
__all__: list[str] = []

GATINGS = ("constant", "softmax")
DISTRIBUTIONS = ("normal", "uniform")


class Table:
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

    def sub(self, key: str, allowed: tuple[str, ...], default: Any = ...) -> Table:
        path = f"{self.path}.{key}" if self.path else key
        return Table(self.source, path, self.get(key, default), allowed)


def _number(table: Table, key, value, low, high, open_low, open_high) -> float:
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


_TOP = (
    "name", "description", "dim", "gating", "pretrained", "prompt", "prompts", "covariates", "truth", "bounds", "paper",
)  # fmt: skip


def spec_fields(data: Mapping[str, Any], source: str = "<dict>", default_name: str = "custom") -> dict[str, Any]:
    """Validate a parsed TOML document (a dict in the layout of MODEL.md sections 2 and 8): the keyword
    arguments of :class:`~bayescmoe.model.spec.Spec` (:func:`~bayescmoe.model.spec.spec_from_dict` builds it)."""
    top = Table(source, "", dict(data), _TOP)
    dim = top.get("dim")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise top.fail("dim", f"must be a positive integer, got {dim!r}")
    gating = top.choice("gating", GATINGS)
    prompts, multi = _prompts(top)
    pretrained = _pretrained(top, dim, multi)
    schedules = _schedules(top, dim, gating, pretrained, len(prompts), multi)
    bounds = parse_bounds(top, gating, prompts)
    truth = _truth(top, dim, gating, prompts, pretrained, schedules, bounds, multi)
    return dict(
        name=top.string("name", default_name),
        description=top.string("description", ""),
        dim=dim,
        gating=gating,
        pretrained=pretrained,
        prompts=prompts,
        covariates=_covariates(top),
        truth=MappingProxyType(truth),
        bounds=MappingProxyType(bounds),
        schedules=schedules,
        **_paper(top),
        source=source,
        multi=multi,
    )


def _paper(top: Table) -> dict[str, Any]:
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


def _pretrained(top: Table, dim: int, multi: bool) -> Pretrained | None:
    if not top.has("pretrained"):
        if not multi:
            raise top.fail(
                "pretrained",
                "is missing; a spec without a frozen expert (the plain mixture of experts) writes its experts "
                "as [[prompts]] tables (MODEL.md section 8)",
            )
        return None
    t = top.sub("pretrained", ("family", "expert", "eta", "intercept", "scale", "df", "mean"))
    family = t.choice("family", FAMILIES)
    if FAMILIES[family].needs_df:
        df = t.number("df", low=0.0)
    elif t.has("df"):
        raise t.fail("df", f"applies to student_t only, not to family {family!r}; remove it")
    else:
        df = None
    scale = None if t.get("scale") == "data" else t.number("scale", low=0.0)
    if t.has("mean"):
        t.choice("mean", ("data",))
        for key in ("expert", "eta", "intercept"):
            if t.has(key):
                raise t.fail(key, 'does not apply with mean = "data" (the mean comes with the data); remove it')
        return Pretrained(family=family, expert=None, eta=None, scale=scale, df=df)
    return Pretrained(
        family=family,
        expert=t.choice("expert", EXPERTS),
        eta=t.vector("eta", dim),
        intercept=t.number("intercept", 0.0),
        scale=scale,
        df=df,
    )


def _one_prompt(t: Table) -> Prompt:
    return Prompt(expert=t.choice("expert", EXPERTS), intercept=t.boolean("intercept", False))


def _prompts(top: Table) -> tuple[tuple[Prompt, ...], bool]:
    if top.has("prompts"):
        if top.has("prompt"):
            raise top.fail("prompt", "and [[prompts]] are both given; write one [prompt] or K [[prompts]] tables")
        raw = top.get("prompts")
        if not isinstance(raw, list) or not raw:
            raise top.fail("prompts", "must be an array of tables ([[prompts]]), one per prompt")
        return tuple(_one_prompt(Table(top.source, f"prompts[{k}]", item, ("expert", "intercept")))
                     for k, item in enumerate(raw)), True  # fmt: skip
    return (_one_prompt(top.sub("prompt", ("expert", "intercept"))),), False


def _covariates(top: Table) -> Covariates:
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


def _schedules(top: Table, dim: int, gating: str, pre: Pretrained | None, K: int, multi: bool) -> tuple:
    truth = top.get("truth") if isinstance(top.get("truth"), dict) else {}
    raw = truth.get("schedule", [])
    if not isinstance(raw, list):
        raise SpecError(f"{top.source}: truth.schedule must be an array of tables ([[truth.schedule]])")
    out, seen = [], set()
    allowed = ("parameter", "form", "c", "kappa", "direction") + (("prompt",) if multi else ())
    for i, item in enumerate(raw):
        t = Table(top.source, f"truth.schedule[{i}]", item, allowed)
        param = t.choice("parameter", ("eta", "nu", "lam", "tau"))
        if K >= 2 and not t.has("prompt"):
            raise t.fail(
                "prompt", f"is missing: with {K} prompts, say which one the schedule moves (prompt = 1 .. {K})"
            )
        prompt = t.get("prompt", 1)
        if isinstance(prompt, bool) or not isinstance(prompt, int) or not 1 <= prompt <= K:
            raise t.fail("prompt", f"must be a prompt number from 1 to {K}, got {prompt!r}")
        if (param, prompt) in seen:
            raise t.fail("parameter", f"{param!r} has a schedule already; give one schedule per parameter")
        seen.add((param, prompt))
        form = t.choice("form", ("vanish",) if param in ("lam", "tau") else ("merge",))
        if param == "lam" and gating != "constant":
            raise t.fail("parameter", "'lam' exists only with gating = \"constant\"")
        if param == "tau" and gating != "softmax":
            raise t.fail("parameter", "'tau' exists only with gating = \"softmax\"")
        if param == "tau" and K > 1:
            raise t.fail("parameter", "a vanishing 'tau' is defined for one prompt only")
        if param in ("eta", "nu") and (pre is None or pre.mean_from_data):
            raise t.fail("parameter", "a merge needs a frozen expert whose mean is a formula (eta0), not data")
        if param == "nu" and pre.family != "normal":
            raise t.fail("parameter", f"a merge of 'nu' needs the normal pre-trained family, not {pre.family!r}")
        if param == "nu" and pre.scale_from_data:
            raise t.fail("parameter", "a merge of 'nu' needs a numeric pre-trained scale, not \"data\"")
        c = t.number("c", low=0.0) if param in ("nu", "lam", "tau") else t.number("c")
        kappa = t.number("kappa", low=0.0, open_low=False)
        direction = None
        if param == "eta":
            direction = t.vector("direction", dim)
            if not any(direction):
                raise t.fail("direction", "must not be the zero vector")
        elif t.has("direction"):
            raise t.fail("direction", f"applies to 'eta' only, not to {param!r}; remove it")
        out.append(Schedule(param, form, c, kappa, direction, prompt))
    return tuple(out)


def parse_bounds(top: Table, gating: str, prompts: tuple[Prompt, ...]) -> dict[str, tuple[float, float]]:
    names = ("beta", "tau") if gating == "softmax" else ("lam",)
    names += ("eta",) + (("b",) if any(p.intercept for p in prompts) else ()) + ("nu",)
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


def _truth(top, dim, gating, prompts, pre, schedules, bounds, multi) -> dict[str, Any]:
    allowed = ("beta", "tau", "lam", "eta", "b", "nu", "schedule")
    t = top.sub("truth", allowed)
    intercept = any(p.intercept for p in prompts)
    names = ("beta", "tau") if gating == "softmax" else ("lam",)
    names += ("eta",) + (("b",) if intercept else ()) + ("nu",)
    for key in set(allowed) - set(names) - {"schedule"}:
        if t.has(key):
            why = {"b": "prompt.intercept is false", "lam": "gating is softmax"}.get(key, "gating is constant")
            raise t.fail(key, f"is not a parameter of this spec ({why}); remove it")
    if multi:
        return _truth_per_prompt(t, dim, names, prompts, pre, schedules, bounds)
    scheduled = {s.parameter for s in schedules}
    out: dict[str, Any] = {}
    for name in names:
        if name in scheduled and not t.has(name):
            continue  # the schedule defines it
        if name in ("beta", "eta"):
            out[name] = t.vector(name, dim)
        elif name == "nu":
            out[name] = t.number(name, low=0.0)
        elif name == "lam":
            out[name] = t.number(name, low=0.0, high=1.0)
        else:
            out[name] = t.number(name)
        if name not in scheduled:
            _within(t, name, out[name], bounds)
    return out


def _within(t: Table, name: str, value: Any, bounds) -> None:
    lo, hi = bounds[name]
    values = np.atleast_1d(value)
    if np.any(values < lo) or np.any(values > hi):
        raise t.fail(name, f"lies outside its bounds [{lo:g}, {hi:g}]; widen [bounds] or move the truth")


def _truth_per_prompt(t: Table, dim, names, prompts, pre, schedules, bounds) -> dict[str, Any]:
    """Section 8: one row or entry per true prompt; the entries the model fixes are checked, not estimated.
    Section 10: K* rows for the first K* <= K prompts (the truth of an over-specified fit)."""
    K, out = _true_prompts(t, names, prompts, schedules), {}
    for name in names:
        rows = {s.prompt - 1 for s in schedules if s.parameter == name}  # the schedule defines these
        if not t.has(name) and len(rows) == K:
            value = np.zeros((K, dim) if name in ("beta", "eta") else K)
        elif name in ("beta", "eta"):
            raw = t.get(name)
            if not isinstance(raw, list) or len(raw) != K or not all(isinstance(r, list) for r in raw):
                raise t.fail(name, f"must be a list of {K} rows (one per true prompt) of {dim} numbers, got {raw!r}")
            value = np.array([_row(t, name, r, dim) for r in raw])
        else:
            value = np.array(_row(t, name, t.get(name), K, "true prompt, as many as every entry of [truth]"))
        free = np.setdiff1d(np.arange(K), list(rows))
        if name == "nu" and np.any(value[free] <= 0):
            raise t.fail(name, f"must be > 0 (variances), got {value.tolist()}")
        if name == "lam":
            first = 0 if pre is not None else 1  # without a frozen expert lam_1 is 1 minus the others
            if np.any(value[first:][np.isin(np.arange(first, K), free)] <= 0):
                raise t.fail(name, f"must be > 0, got {value.tolist()}")
            if value[first:].sum() >= 1.0:
                whose = "the frozen expert's weight" if pre is not None else "prompt 1's weight, 1 minus the others,"
                raise t.fail(name, f"sums to {value[first:].sum():g}: {whose} would not be positive")
            if pre is None:
                value[0] = 1.0 - value[1:].sum()
        if name in ("beta", "tau") and pre is None and np.any(value[0] != 0):
            raise t.fail(name, "must be 0 for prompt 1: without a frozen expert, prompt 1 is the gate's reference")
        if name == "b":
            no_intercept = [k + 1 for k, p in enumerate(prompts[:K]) if not p.intercept and value[k] != 0]
            if no_intercept:
                raise t.fail(name, f"must be 0 for prompt {no_intercept[0]}, which has no intercept")
        check = value[free] if name != "lam" or pre is not None else value[1:][np.isin(np.arange(1, K), free)]
        _within(t, name, check, bounds)
        out[name] = tuple(tuple(r) for r in value.tolist()) if value.ndim == 2 else tuple(value.tolist())
    return out


def _true_prompts(t: Table, names, prompts, schedules) -> int:
    """K*: the rows of [truth] (the first entry written decides; the others must agree), 1 <= K* <= K."""
    K = len(prompts)
    written = next((name for name in names if t.has(name)), None)
    raw = t.get(written) if written else None
    if not isinstance(raw, list) or not raw:
        return K  # every entry from schedules, or a malformed entry: its own check says what is wrong
    K_true = len(raw)
    for name in names:
        other = t.get(name) if t.has(name) else None
        if isinstance(other, list) and len(other) != K_true:
            raise t.fail(name, f"has {len(other)} entries but truth.{written} has {K_true}: every entry of [truth] "
                         f"needs one per true prompt (K* of them, K* <= K = {K})")  # fmt: skip
    if K_true > K:
        raise t.fail(written, f"has {K_true} rows but the spec has {K} [[prompts]]; give one row per true prompt")
    if K_true < K:
        late = [s.prompt for s in schedules if s.prompt > K_true]
        if late:
            raise t.fail("schedule", f"moves prompt {late[0]}, which the {K_true}-prompt truth does not have")
        if "lam" in names:
            raise t.fail(written, f"has {K_true} rows for {K} prompts: an over-specified truth (K* < K, MODEL.md "
                         "section 10) needs softmax gating; give all K rows or set gating = \"softmax\"")  # fmt: skip
    return K_true


def _row(t: Table, key: str, value: Any, length: int, what: str = "covariate") -> list[float]:
    if not isinstance(value, list) or len(value) != length:
        raise t.fail(key, f"must be a list of {length} numbers (one per {what}), got {value!r}")
    return [_number(t, key, v, None, None, True, True) for v in value]
