"""bayescmoe: the softmax-contaminated mixture of experts as a PyMC model.

    p(y | x) = (1 - g(x)) f0(y | h0(x)) + g(x) N(y | h(x; eta, b), nu),   g(x) = sigmoid(beta . x + tau)

A frozen pre-trained expert ``f0`` mixed with a trainable Gaussian prompt
(arXiv 2505.18455; constant gating ``g = lam``: arXiv 2410.12258).  See
``MODEL.md`` for the contract and the README for a tour.
"""

from bayescmoe.data import read_csv, write_csv
from bayescmoe.em import fit_em
from bayescmoe.estimator import ContaminatedMoE
from bayescmoe.exceptions import (
    BayescmoeError,
    BoundaryWarning,
    ConvergenceWarning,
    DataError,
    FitError,
    IdentifiabilityWarning,
    SpecError,
)
from bayescmoe.mle import fit_map, fit_mle
from bayescmoe.model import build_model
from bayescmoe.objective import loglik
from bayescmoe.posterior import diagnose, posterior_sd, sample_posterior
from bayescmoe.priors import WEAK_PRIORS, Prior
from bayescmoe.results import FitResult
from bayescmoe.simulate import simulate
from bayescmoe.spec import Spec, list_specs, load_spec, spec_from_dict

__version__ = "0.1.0"

__all__ = [
    "BayescmoeError",
    "BoundaryWarning",
    "ContaminatedMoE",
    "ConvergenceWarning",
    "DataError",
    "FitError",
    "FitResult",
    "IdentifiabilityWarning",
    "Prior",
    "Spec",
    "SpecError",
    "WEAK_PRIORS",
    "build_model",
    "diagnose",
    "fit_em",
    "fit_map",
    "fit_mle",
    "list_specs",
    "load_spec",
    "loglik",
    "posterior_sd",
    "read_csv",
    "sample_posterior",
    "simulate",
    "spec_from_dict",
    "write_csv",
]
