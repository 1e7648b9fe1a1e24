"""NUTS posteriors of the contaminated MoE, started at the MLE, with their diagnostics checked.

:func:`sample_posterior` builds the PyMC model (:func:`bayescmoe.build_model`) under the weakly
informative priors of :mod:`bayescmoe.model.priors` (or the caller's), fits the MLE, and starts every
chain there, without jitter: jittered starts can land in the poor modes a mixture likelihood
has.  The sampler is nutpie when it is installed (``pip install 'bayescmoe[nutpie]'``), PyMC's
NUTS otherwise.  PyMC's NUTS is compiled with the C virtual machine (seconds) rather than
pytensor's default Numba backend (minutes on a cold cache); nutpie needs Numba, and pays that
compilation once per model on a cold cache (benchmarks/RESULTS.md has both measured).

Afterwards the rank-normalised split R-hat, bulk and tail effective sample sizes and the
divergences are checked (:func:`diagnose`); a failed check warns with advice.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymc as pm
import xarray as xr

from bayescmoe.exceptions import BayescmoeError, ConvergenceWarning, LabelSwitchingWarning
from bayescmoe.fit.mle import fit_mle
from bayescmoe.fit.results import FitResult, _summary_sd
from bayescmoe.model.build import build_model
from bayescmoe.model.data import check_data, check_f0
from bayescmoe.model.kernel import compile_mode
from bayescmoe.model.labels import relabel
from bayescmoe.model.spec import Spec, load_spec

__all__ = ["Diagnostics", "diagnose", "posterior_sd", "sample_posterior", "SAMPLERS"]

SAMPLERS = ("auto", "nutpie", "pymc")
#: Largest acceptable rank-normalised split R-hat (Vehtari et al. 2021).
RHAT_MAX = 1.01
#: Smallest acceptable bulk and tail ESS, per chain (Vehtari et al. 2021: 100 per chain).
ESS_PER_CHAIN = 100


def _nutpie_installed() -> bool:
    return importlib.util.find_spec("nutpie") is not None


def resolve_sampler(sampler: str) -> str:
    """``"auto"`` -> ``"nutpie"`` when nutpie is installed, else ``"pymc"``."""
    if sampler not in SAMPLERS:
        raise BayescmoeError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if sampler == "auto":
        return "nutpie" if _nutpie_installed() else "pymc"
    if sampler == "nutpie" and not _nutpie_installed():
        raise BayescmoeError(
            "sampler 'nutpie' is not installed; pip install 'bayescmoe[nutpie]', or use --sampler pymc"
        )
    return sampler


def sample_posterior(
    spec: Spec | str,
    X: Any,
    y: Any,
    *,
    priors: str | Mapping[str, Any] | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    sampler: str = "auto",
    seed: int | None = 0,
    init: FitResult | Mapping[str, Any] | None = None,
    cores: int = 1,
    target_accept: float = 0.8,
    progressbar: bool = False,
    check: bool = True,
    f0_mean: Any = None,
    f0_scale: Any = None,
) -> xr.DataTree:
    """Sample the posterior of the contaminated MoE with NUTS, every chain started at the MLE.

    Parameters
    ----------
    spec : Spec or str
        The setting (a name from ``models/`` or a TOML path).
    X, y : array_like
        Covariates ``(n, d)`` and responses ``(n,)``.
    priors : None, "weak", "flat" or dict
        ``None`` means ``"weak"``, the weakly informative defaults of
        :data:`bayescmoe.WEAK_PRIORS` (reasons in :mod:`bayescmoe.model.priors`); ``"flat"`` is uniform
        on the spec's box; a dict overrides single parameters (see :func:`build_model`).
    draws, tune, chains : int
        Kept draws and tuning steps per chain, and the number of chains.
    sampler : {"auto", "nutpie", "pymc"}
        ``"auto"`` takes nutpie when it is installed, PyMC's NUTS otherwise.
    seed : int or None
        Seeds the MLE's starts and the sampler.
    init : FitResult or dict, optional
        Where the chains start; default the MLE, ``fit_mle(spec, X, y, seed=seed)``.
    cores : int
        Chains run in parallel on this many cores.
    target_accept : float
        NUTS' target acceptance rate; raise it (0.95) when there are divergences.
    check : bool
        Check R-hat, ESS and divergences afterwards and warn (:class:`ConvergenceWarning`).

    Returns
    -------
    xarray.DataTree
        Groups ``posterior`` (dims ``chain``, ``draw`` and ``covariate`` for ``beta`` and
        ``eta``), ``sample_stats`` and ``observed_data``; the chains' start is in the posterior's
        attribute ``init`` (JSON), the sampler in ``sampler``.

    Examples
    --------
    >>> import bayescmoe as bc
    >>> spec = bc.load_spec("softmax_distinguishable")
    >>> X, y, truth = bc.simulate(spec, n=2000, seed=0)
    >>> idata = bc.sample_posterior(spec, X, y, draws=200, tune=200, chains=2, sampler="pymc")  # doctest: +SKIP
    >>> idata.posterior["beta"].dims  # doctest: +SKIP
    ('chain', 'draw', 'covariate')
    """
    spec = load_spec(spec)
    X, y = check_data(spec, X, y)
    f0_mean, f0_scale = check_f0(spec, X, f0_mean, f0_scale)
    for name, value, low in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1), ("cores", cores, 1)):
        if not (isinstance(value, (int, np.integer)) and value >= low):
            raise BayescmoeError(f"{name} must be an integer >= {low}, got {value!r}")
    if not 0 < target_accept < 1:
        raise BayescmoeError(f"target_accept must lie in (0, 1), got {target_accept!r}")
    sampler = resolve_sampler(sampler)
    priors = "weak" if priors is None else priors
    model = build_model(spec, X, y, priors=priors, f0_mean=f0_mean, f0_scale=f0_scale)
    start = _start(spec, X, y, init, seed, f0_mean, f0_scale)
    initial = _initial_values(spec, start)
    with warnings.catch_warnings():
        # PyMC's own convergence messages are replaced by diagnose()'s, which give advice
        warnings.filterwarnings("ignore", message=".*(r_hat|R-hat|effective sample size|divergen).*")
        if sampler == "nutpie":
            idata = _sample_nutpie(model, initial, draws, tune, chains, cores, seed, target_accept, progressbar)
        else:
            idata = _sample_pymc(model, initial, draws, tune, chains, cores, seed, target_accept, progressbar)
    idata = _tidy(idata, spec, y)
    relabelled = _relabel(spec, idata, start)
    idata.posterior.attrs.update(
        sampler=sampler,
        spec=spec.name,
        spec_digest=spec.digest(),
        priors=_describe_priors(priors),
        init=json.dumps({k: np.asarray(v).tolist() for k, v in start.items()}),
        relabelled_draws=json.dumps(relabelled.tolist()),
        fixed=json.dumps({k: (~spec.layout.estimated(k)).tolist() for k in spec.param_names if spec.multi}),
    )
    if check:
        diagnose(idata).warn()
    return idata


def _start(spec: Spec, X, y, init, seed, f0_mean=None, f0_scale=None) -> dict[str, np.ndarray]:
    if init is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the MLE's own warnings concern its standard errors
            init = fit_mle(spec, X, y, seed=seed, f0_mean=f0_mean, f0_scale=f0_scale)
    params = init.params if isinstance(init, FitResult) else dict(init)
    missing = sorted(set(spec.param_names) - set(params))
    if missing:
        raise BayescmoeError(f"init misses parameter {missing[0]!r}; give all of {', '.join(spec.param_names)}")
    # a start exactly on the box would be infinitely far out in an interval transform
    lo, hi = spec.bounds_arrays()
    inside = np.clip(spec.layout.pack(params), lo + 1e-6 * (hi - lo), hi - 1e-6 * (hi - lo))
    return {k: np.asarray(v, dtype=np.float64) for k, v in spec.layout.unpack(inside).items()}


def _initial_values(spec: Spec, start: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The start as values of the model's free variables (see :func:`bayescmoe.model.build.build_model`)."""
    if not spec.multi:
        return start
    out = {}
    for name in spec.param_names:
        value = np.asarray(start[name], dtype=np.float64)
        if name == "lam":
            out["weights"] = np.r_[1.0 - value.sum(), value] if spec.has_pretrained else value
        elif spec.layout.estimated(name).all():
            out[name] = value
        else:
            rows = spec.layout.estimated(name).reshape(spec.K, -1).any(axis=1)
            out[f"{name}_free"] = value[rows]
    return out


def _relabel(spec: Spec, idata: xr.DataTree, start: dict[str, np.ndarray]) -> np.ndarray:
    """Detect label switching between exchangeable prompts and relabel the draws to the start's order
    (:func:`bayescmoe.model.labels.relabel`); warn with the counts per chain."""
    post = idata.posterior
    chains = post.sizes["chain"]
    if not spec.multi or not spec.exchangeable():
        return np.zeros(chains, dtype=int)
    names = list(spec.param_names)
    draws = {name: post[name].values for name in names}
    relabelled, counts = relabel(spec, draws, start)
    if counts.any():
        ds = post.to_dataset()
        for name in names:
            ds[name] = (post[name].dims, relabelled[name])
        idata["posterior"] = xr.DataTree(ds)
        warnings.warn(
            f"label switching: {counts.sum()} draws ({', '.join(f'chain {c}: {n}' for c, n in enumerate(counts) if n)}) "
            "had exchangeable prompts in another order than the MLE the chains started from; they were relabelled "
            "to it (matching each draw's eta, b and nu). Summaries are of the relabelled draws.",
            LabelSwitchingWarning,
            stacklevel=3,
        )
    return counts


def _sample_pymc(model, start, draws, tune, chains, cores, seed, target_accept, progressbar):
    # without its progress bar PyMC is quiet too: its INFO lines ("Initializing NUTS...") would break the
    # progress a study draws on the same stderr
    log = logging.getLogger("pymc")
    level = log.level
    if not progressbar:
        log.setLevel(max(level, logging.WARNING))
    try:
        with model:
            return _pm_sample(model, start, draws, tune, chains, cores, seed, target_accept, progressbar)
    finally:
        log.setLevel(level)


def _pm_sample(model, start, draws, tune, chains, cores, seed, target_accept, progressbar):
    with model:
        return pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=seed,
            initvals=start,
            init="adapt_diag",
            target_accept=target_accept,
            progressbar=progressbar,
            compute_convergence_checks=False,
            nuts_sampler="pymc",
            compile_kwargs={"mode": compile_mode()},
        )


def _sample_nutpie(model, start, draws, tune, chains, cores, seed, target_accept, progressbar):
    import nutpie

    compiled = nutpie.compile_pymc_model(model, initial_points=start, jitter_rvs=set())
    return nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        seed=seed,
        target_accept=target_accept,
        progress_bar=progressbar,
        save_warmup=False,
    )


def _tidy(idata: xr.DataTree, spec: Spec, y: np.ndarray) -> xr.DataTree:
    """Keep the groups a user needs (posterior, sample_stats, observed_data); add observed_data where the
    sampler (nutpie) left it out, and keep only the parameters (MODEL.md names) in the posterior."""
    keep = {
        name: idata[name].to_dataset()
        for name in ("posterior", "sample_stats", "observed_data")
        if name in idata.children
    }
    if "observed_data" not in keep:
        keep["observed_data"] = xr.Dataset({"y": ("obs", y)}, coords={"obs": np.arange(len(y))})
    keep["posterior"] = keep["posterior"][list(spec.param_names)]
    return xr.DataTree.from_dict({f"/{k}": v for k, v in keep.items()})


def _describe_priors(priors) -> str:
    if isinstance(priors, str):
        return priors
    return "weak, except " + ", ".join(f"{k} ~ {v!r}" for k, v in priors.items())


# -- diagnostics ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Diagnostics:
    """Convergence diagnostics of a posterior sample, worst value per parameter."""

    chains: int
    draws: int
    r_hat: dict[str, float]
    ess_bulk: dict[str, float]
    ess_tail: dict[str, float]
    divergences: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def warn(self) -> None:
        for problem in self.problems:
            warnings.warn(problem, ConvergenceWarning, stacklevel=3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chains": self.chains,
            "draws": self.draws,
            "r_hat": self.r_hat,
            "ess_bulk": self.ess_bulk,
            "ess_tail": self.ess_tail,
            "divergences": self.divergences,
            "ok": self.ok,
            "problems": list(self.problems),
        }


def _worst(ds: xr.Dataset, how, fixed: dict[str, list[bool]]) -> dict[str, float]:
    """The worst value per parameter, over the entries the model estimates (a fixed entry has no R-hat or
    ESS: ``fixed`` comes from the posterior's attribute, written by :func:`sample_posterior`)."""
    out = {}
    for name in ds.data_vars:
        values = ds[name].values.reshape(-1)
        if name in fixed:
            values = values[~np.asarray(fixed[name], bool)]
        out[name] = float(how(values))
    return out


def diagnose(idata: xr.DataTree) -> Diagnostics:
    """R-hat, bulk and tail ESS (worst coordinate per parameter) and divergences, with advice.

    Thresholds: R-hat at most 1.01 and ESS at least 100 per chain (Vehtari, Gelman, Simpson,
    Carpenter and Buerkner 2021), no divergent transition.  R-hat needs two chains or more.
    """
    import arviz as az  # here, not at the top: importing it (plots and all) takes seconds that a fit never needs

    post = idata.posterior
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    fixed = json.loads(post.attrs.get("fixed", "{}"))
    with warnings.catch_warnings():  # the constant entries the model fixes divide by a zero variance
        warnings.simplefilter("ignore", RuntimeWarning)
        r_hat = _worst(az.rhat(idata).to_dataset(), np.max, fixed) if chains > 1 else {}
        ess_bulk = _worst(az.ess(idata, method="bulk").to_dataset(), np.min, fixed)
        ess_tail = _worst(az.ess(idata, method="tail").to_dataset(), np.min, fixed)
    stats = idata.sample_stats
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    problems = []
    bad = {k: v for k, v in r_hat.items() if not v <= RHAT_MAX}
    if bad:
        worst = max(bad, key=lambda k: bad[k] if np.isfinite(bad[k]) else np.inf)
        problems.append(
            f"R-hat above {RHAT_MAX} for {', '.join(sorted(bad))} (worst {worst}: {bad[worst]:.3f}): the chains "
            "disagree; run longer (more tune and draws), and if it persists the posterior may have several "
            "modes or a ridge (check distinguishability: bayescmoe check SPEC)"
        )
    need = ESS_PER_CHAIN * chains
    for kind, ess in (("bulk", ess_bulk), ("tail", ess_tail)):
        low = {k: v for k, v in ess.items() if not v >= need}
        if low:
            worst = min(low, key=lambda k: low[k] if np.isfinite(low[k]) else -np.inf)
            problems.append(
                f"{kind} ESS below {need} ({ESS_PER_CHAIN} per chain) for {', '.join(sorted(low))} (worst {worst}: "
                f"{low[worst]:.0f}): {'means and SDs' if kind == 'bulk' else 'credible intervals'} are imprecise; "
                "draw more (draws=)"
            )
    if divergences:
        problems.append(
            f"{divergences} divergent transitions of {chains * draws}: the sampler missed curved regions and "
            "the sample may be biased; raise target_accept (e.g. 0.95) or use tighter priors"
        )
    return Diagnostics(chains, draws, r_hat, ess_bulk, ess_tail, divergences, problems)


def posterior_sd(idata: xr.DataTree) -> dict[str, float]:
    """One posterior SD per parameter (and ``exp_tau``): vectors by the root mean square of their SDs.

    The same summary as the Fisher information's and the MLE's standard errors in the studies.
    """
    post = idata.posterior
    fixed = json.loads(post.attrs.get("fixed", "{}"))

    def sd(values, name):  # per entry; NaN for the entries the model fixes
        out = np.asarray(values.std(dim=("chain", "draw")).values, float)
        if name in fixed:
            out = np.where(np.asarray(fixed[name], bool).reshape(out.shape), np.nan, out)
        return out

    out = _summary_sd({name: sd(post[name], name) for name in post.data_vars})
    if "tau" in post:
        out["exp_tau"] = _summary_sd({"e": sd(np.exp(post["tau"]), "tau")})["e"]
    return out
