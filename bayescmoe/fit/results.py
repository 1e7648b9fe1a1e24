"""The result of a point estimate, in the statsmodels manner."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from bayescmoe.model.proposition import proposition_1
from bayescmoe.model.spec import Spec

#: Smallest/largest eigenvalue of the observed information below which summary() flags it.
NEARLY_SINGULAR = 1e-6

__all__ = ["FitResult"]


def _wald_z(alpha: float) -> float:
    """The normal quantile of a two-sided ``1 - alpha`` Wald interval; ``alpha`` must lie in (0, 1)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1) (0.05 gives 95% intervals), got {alpha!r}")
    return float(stats.norm.ppf(1.0 - alpha / 2.0))


@dataclass(frozen=True, repr=False)
class FitResult:
    """A fitted contaminated MoE: estimates, standard errors and how the optimiser ended.

    Attributes
    ----------
    spec : Spec
        The setting that was fitted.
    method : str
        ``"mle"``, ``"map"`` (or another estimator's name).
    theta : ndarray, shape (p,)
        The estimate as a flat vector in ``spec.layout`` order.
    cov : ndarray, shape (p, p)
        Inverse observed information (negative Hessian of the maximised objective);
        NaN where it is singular or the parameter sits on a bound.
    loglik : float
        Log-likelihood at the estimate (without the prior, for MAP).
    objective : float
        The maximised objective: the log-likelihood (MLE) or log-posterior (MAP).
    nobs : int
        Number of observations.
    converged : bool
    status : str
        The optimiser's final state (e.g. ``"converged"``).
    message : str
        A sentence on how the fit ended, with advice if it did not converge.
    n_iter : int
        Newton iterations of the best start.
    seconds : float
        Wall time of the whole fit, all starts included.
    start : str
        ``"multistart"``, ``"truth"`` or ``"given"``.
    n_starts : int
        Number of starting points tried.
    at_bound : ndarray of bool, shape (p,)
        Parameters that ended on the box of ``spec.bounds``.
    info_eigenvalues : ndarray
        Eigenvalues of the observed information over the interior parameters
        (ascending); a tiny smallest one means the parameters are barely
        identified (for instance when distinguishability fails).
    loglik_pretrained : float
        Log-likelihood of the pre-trained expert alone (the model without a prompt).
    units : bayescmoe.model.units.Units or None
        For a fit of a user's data in standardised units (``bounds="data"``, the estimator): the map; the
        estimate, its covariance and the log-likelihoods above are in the data's units.
    standard : FitResult or None
        That fit in standardised units (its box, its information's eigenvalues).
    warnings : tuple of str
        Every warning the fit raised (``"DegenerateWarning: prompt 2 ..."``), kept for functions that fit many
        models and report them.
    """

    spec: Spec
    method: str
    theta: np.ndarray
    cov: np.ndarray
    loglik: float
    objective: float
    nobs: int
    converged: bool
    status: str
    message: str
    n_iter: int
    seconds: float
    start: str
    n_starts: int
    at_bound: np.ndarray
    info_eigenvalues: np.ndarray = field(repr=False)
    loglik_pretrained: float = float("nan")
    units: Any = None  # bayescmoe.model.units.Units of a fit in standardised units (bounds="data"), else None
    standard: Any = field(default=None, repr=False)  # that fit itself, in standardised units
    warnings: tuple[str, ...] = ()  # every warning the fit raised, as "Category: message"

    # -- statsmodels-style accessors -----------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        """Estimates keyed by parameter name (vectors as arrays, scalars as floats)."""
        return self.spec.layout.unpack(self.theta)

    @property
    def stderr(self) -> dict[str, Any]:
        """Standard errors from the observed information, keyed like :attr:`params` (NaN for the entries the
        model fixes; the delta method for a constant gate's reference weight, one minus the others)."""
        variances = self.spec.layout.full_variances(self.cov)
        return {name: (float(np.sqrt(v)) if np.ndim(v) == 0 else np.sqrt(v)) for name, v in variances.items()}

    bse = stderr

    @property
    def llf(self) -> float:
        return self.loglik

    @property
    def n_params(self) -> int:
        return self.theta.size

    @property
    def aic(self) -> float:
        """Akaike's criterion, ``2 k - 2 loglik``."""
        return 2.0 * self.n_params - 2.0 * self.loglik

    @property
    def bic(self) -> float:
        """Schwarz's criterion, ``k log n - 2 loglik``."""
        return self.n_params * math.log(self.nobs) - 2.0 * self.loglik

    @property
    def labels(self) -> tuple[str, ...]:
        """One label per entry of :attr:`theta`, e.g. ``beta[x1]``."""
        return self.spec.labels

    def cov_params(self) -> np.ndarray:
        """The covariance matrix of :attr:`theta` (statsmodels' name)."""
        return self.cov

    def conf_int(self, alpha: float = 0.05) -> dict[str, tuple[Any, Any]]:
        """Wald ``1 - alpha`` intervals ``(lower, upper)`` keyed by parameter name.

        Intervals are NaN where the standard error is (singular information or an
        estimate on a bound, where Wald intervals do not apply).
        """
        z, params, se = _wald_z(alpha), self.params, self.stderr
        return {name: (params[name] - z * se[name], params[name] + z * se[name]) for name in self.spec.param_names}

    # -- presentation ------------------------------------------------------------------------
    def summary(self, alpha: float = 0.05) -> str:
        """A readable table of estimates, standard errors and ``1 - alpha`` intervals, with the fit's facts."""
        z = _wald_z(alpha)
        se = np.sqrt(np.diag(self.cov))
        level = f"{100 * (1 - alpha):g}%"
        spec = self.spec
        pre = spec.pretrained
        f0 = "no frozen expert" if pre is None else f"f0 {pre.family}/{pre.expert or 'data'}"
        experts = ", ".join(p.expert for p in spec.prompts)
        head = [
            f"{self.method.upper()} of {spec.name}  ({spec.gating} gating, {f0}, "
            f"prompt{'s' if spec.K > 1 else ''} {experts})",
            f"n = {self.nobs}   log-likelihood = {self.loglik:.6f}   AIC = {self.aic:.3f}   BIC = {self.bic:.3f}",
            f"{self.status} after {self.n_iter} {'EM' if self.method == 'em' else 'Newton'} iterations "
            f"({self.start}, {self.n_starts} "
            f"start{'s' if self.n_starts != 1 else ''}) in {self.seconds:.2f} s",
        ]
        width = max(len(label) for label in self.labels)
        rows = [f"{'parameter':<{width}}  {'estimate':>12}  {'std err':>11}  {level + ' interval':>27}"]
        for label, est, s, bound in zip(self.labels, self.theta, se, self.at_bound):
            interval = f"[{est - z * s:11.5g}, {est + z * s:11.5g}]" if np.isfinite(s) else f"{'-':>26}"
            flag = "  at bound" if bound else ""
            rows.append(f"{label:<{width}}  {est:12.6g}  {s:11.4g}  {interval:>27}{flag}")
        notes = self._fixed_entries() + self._units_note() + self._notes()
        return "\n".join(head + [""] + rows + ([""] + notes if notes else []))

    def _fixed_entries(self) -> list[str]:
        """A line on the entries the model sets rather than estimates (several prompts only)."""
        spec = self.spec
        if not spec.multi:
            return []
        out = []
        full = spec.layout.full_labels(spec.covariate_names, spec.prompt_names)
        values, se = self.params, self.stderr
        for name in spec.param_names:
            estimated = spec.layout.estimated(name)
            for label, flag, v, s in zip(full[name], estimated, np.ravel(values[name]), np.ravel(se[name])):
                if not flag:
                    out.append(f"{label} = {v:.6g}" + (f" (std err {s:.4g})" if np.isfinite(s) else ""))
        if not out:
            return []
        why = []
        if not spec.has_pretrained:
            why.append(
                "prompt 1 is the gate's reference" if spec.gating == "softmax" else "lam[p1] is one minus the others"
            )
        if "b" in spec.param_names and not spec.layout.estimated("b").all():
            why.append("a prompt without an intercept has b = 0")
        return [f"Set by the model, not estimated ({'; '.join(why)}): " + ", ".join(out)]

    def _units_note(self) -> list[str]:
        """How a fit in standardised units (``bounds="data"``) is reported."""
        u = self.units
        if u is None:
            return []
        text = (
            f"Fitted in standardised units (y: (y - {u.y_center:.6g}) / {u.y_scale:.6g}; each covariate by its mean and "
            "SD), the box and the variance floor relative to the data; estimates, standard errors and the "
            "log-likelihood are in the data's units."
        )
        maps = [k + 1 for k, (c, a) in enumerate(u.output_map(self.spec)) if (c, a) != (0.0, 1.0)]
        if maps:
            text += (
                f" Prompt{'s' if len(maps) > 1 else ''} {', '.join(map(str, maps))} (not linear): mean = "
                f"{u.y_center:.6g} + {u.y_scale:.6g} phi(eta . x + b), eta and b in the covariates' units."
            )
        return [text]

    def _notes(self) -> list[str]:
        notes = []
        if not self.converged:
            notes.append(f"Warning: {self.message}")
        if self.at_bound.any():
            notes.append(
                "Estimates marked 'at bound' sit on the spec's box: the likelihood still rises "
                "beyond it, and their standard errors are not given."
            )
        eig = self.info_eigenvalues
        if eig.size and (eig[0] <= 0 or eig[0] < NEARLY_SINGULAR * eig[-1]):
            notes.append(
                f"The observed information is {'singular' if eig[0] <= 0 else 'nearly singular'} "
                f"(smallest/largest eigenvalue {eig[0] / eig[-1]:.2g}): some parameter combinations "
                "are barely identified, as when the prompt and the pre-trained expert are not "
                "distinguishable; standard errors are unreliable or undefined."
            )
        lr = self.lr_against_pretrained
        if np.isfinite(lr) and lr < 0:
            notes.append(
                f"The fit is below the pre-trained expert alone (likelihood ratio {lr:.3g} < 0), which any prompt "
                "with a vanishing gate matches: the optimiser did not reach the optimum. Check the data's units "
                "against the spec's box (covariates of order 1), try more starts (n_starts), or fit with "
                "bayescmoe.ContaminatedMoE, which works in standardised units."
            )
        elif np.isfinite(lr) and lr < stats.chi2.ppf(0.99, self.n_params):
            why = (
                "the prompt and the pre-trained expert are then close to non-distinguishable: the gate's "
                "information vanishes with their distance (its standard errors grow like 1/distance)"
                if proposition_1(self.spec) is False
                else "the prompt is close to vanishing or to the pre-trained expert, and the gate's "
                "parameters are barely identified"
            )
            notes.append(
                f"The fit is not significantly better than the pre-trained expert alone (likelihood ratio "
                f"{lr:.3g} on {self.n_params} parameters, below the chi-square 99% point "
                f"{stats.chi2.ppf(0.99, self.n_params):.3g}): {why}. Wald intervals are then unreliable; "
                "check with `bayescmoe check` and prefer posterior intervals."
            )
        return notes

    @property
    def lr_against_pretrained(self) -> float:
        """``2 (loglik - loglik of the pre-trained expert alone)``: how much the prompt adds (NaN if unknown)."""
        return 2.0 * (self.loglik - self.loglik_pretrained)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready content: estimates, standard errors, intervals and the fit's facts."""
        ci = self.conf_int()

        def plain(v):
            v = np.asarray(v, dtype=float)
            if v.ndim == 0:
                return float(v) if np.isfinite(v) else None
            return [plain(x) for x in v]

        return {
            "spec": self.spec.name,
            "method": self.method,
            "nobs": self.nobs,
            "params": {k: plain(v) for k, v in self.params.items()},
            "stderr": {k: plain(v) for k, v in self.stderr.items()},
            "conf_int_95": {k: [plain(lo), plain(hi)] for k, (lo, hi) in ci.items()},
            "at_bound": [lab for lab, b in zip(self.labels, self.at_bound) if b],
            "loglik": self.loglik,
            "lr_against_pretrained": self.lr_against_pretrained,
            "aic": self.aic,
            "bic": self.bic,
            "converged": self.converged,
            "status": self.status,
            "message": self.message,
            "n_iter": self.n_iter,
            "seconds": self.seconds,
            "start": self.start,
            "n_starts": self.n_starts,
            "warnings": list(self.warnings),
            "units": None
            if self.units is None
            else {
                "x_center": plain(self.units.x_center),
                "x_scale": plain(self.units.x_scale),
                "y_center": self.units.y_center,
                "y_scale": self.units.y_scale,
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        """Short, as statsmodels' and scikit-learn's: the whole table is :meth:`summary`."""
        state = "converged" if self.converged else f"not converged: {self.status}"
        return (
            f"<FitResult {self.method.upper()} of {self.spec.name}: n={self.nobs}, loglik={self.loglik:.6g}, {state}>"
        )


def _summary_sd(sd: dict[str, Any]) -> dict[str, float]:
    """One number per parameter: scalars as they are, vectors by the root mean square of their SDs."""
    return {k: float(np.sqrt(np.nanmean(np.square(v)))) for k, v in sd.items()}
