"""bayescmoe: the softmax-contaminated mixture of experts as a PyMC model.

    p(y | x) = (1 - g(x)) f0(y | h0(x)) + g(x) N(y | h(x; eta, b), nu),   g(x) = sigmoid(beta . x + tau)

A frozen pre-trained expert ``f0`` mixed with a trainable Gaussian prompt
(arXiv 2505.18455; constant gating ``g = lam``: arXiv 2410.12258).  See
``MODEL.md`` for the contract and the README for a tour.

Everything public is importable from here (MODEL.md section 7): the name of each module's
``__all__`` is re-exported below, except those of the internal machinery
(``bayescmoe.fit.optimize``, ``bayescmoe.fit.partitioned``, ``bayescmoe.studies.executors``) and of the command line.
"""

from bayescmoe.exceptions import (
    BayescmoeError,
    BoundaryWarning,
    ConvergenceWarning,
    DataError,
    DegenerateWarning,
    FitError,
    IdentifiabilityWarning,
    LabelSwitchingWarning,
    OutlierWarning,
    ScaleWarning,
    SpecError,
)
from bayescmoe.finetune.adapt import (
    PromptChoice,
    PromptOverlap,
    PromptRow,
    compare_prompts,
    frozen_logpdf,
    predictive_scale,
    prompt_overlap,
)
from bayescmoe.finetune.estimator import ContaminatedMoE, prompt_experts
from bayescmoe.finetune.study import (
    AdaptationComparison,
    AdaptationTask,
    DiamondsTask,
    OneThread,
    adaptation_task,
    choose_prompts,
    compare_adaptations,
    diamonds_task,
    load_diamonds,
)
from bayescmoe.fit.em import fit_em
from bayescmoe.fit.mle import fit_map, fit_mle
from bayescmoe.fit.posterior import SAMPLERS, Diagnostics, diagnose, posterior_sd, sample_posterior
from bayescmoe.fit.results import FitResult
from bayescmoe.fit.starts import (
    from_responsibilities,
    nested_starts,
    partition_starts,
    split_merge_starts,
    split_starts,
    start_count,
)
from bayescmoe.model.build import build_model
from bayescmoe.model.data import (
    as_array,
    check_covariates,
    check_data,
    check_f0,
    check_f0_mean,
    check_response,
    read_columns,
    read_csv,
    take_rows,
    write_csv,
)
from bayescmoe.model.experts import EXPERTS, Expert, get_expert
from bayescmoe.model.families import FAMILIES, Family, get_family, residual_scale
from bayescmoe.model.labels import canonical, relabel
from bayescmoe.model.likelihood import loglik
from bayescmoe.model.priors import WEAK_PRIORS, Prior, free_shape, resolve_priors
from bayescmoe.model.simulate import (
    draw_covariates,
    gate_probability,
    mixture_weights,
    prompt_means,
    simulate,
    simulate_at,
)
from bayescmoe.model.spec import (
    DEFAULT_BOUNDS,
    LOSSES,
    Covariates,
    Layout,
    Pretrained,
    Prompt,
    Schedule,
    Spec,
    list_specs,
    load_spec,
    spec_from_dict,
)
from bayescmoe.model.units import NU_FLOOR, Units, standard_spec
from bayescmoe.studies.constant import coupling, gating_comparison
from bayescmoe.studies.plots import gate_points, plot_gate, plot_study, plot_widening
from bayescmoe.studies.rates import (
    RateRow,
    RateStudy,
    Start,
    empirical_rate,
    n_grid,
    rate_table,
    run_rates,
    schedule_variant,
)
from bayescmoe.studies.reproduce import Plan, cell_counts, reproduce
from bayescmoe.studies.store import Store, StoreError
from bayescmoe.studies.widening import (
    PAPER_DELTA_SLOPES,
    WIDE_PRIORS,
    WideningStudy,
    counterpart,
    params_at_delta,
    widening,
)
from bayescmoe.theory.dendrogram import Dendrogram, Level, dissimilarity, merge_atoms, select_prompts
from bayescmoe.theory.identifiability import (
    DistinguishabilityResult,
    FisherInformation,
    StrongIdentifiabilityResult,
    check_distinguishability,
    check_strong_identifiability,
    delta_scan,
    fisher_information,
    merge_direction,
    prompt_at,
    proposition_1,
)
from bayescmoe.theory.information import QuadratureDesign, asymptotic_sd, expected_information, predicted_losses
from bayescmoe.theory.losses import GRID, N_X, WIDTH, evaluate_losses, hellinger, parameter_losses, voronoi_losses
from bayescmoe.theory.minimax import DEFAULT_DELTAS, PAPER_EXPONENTS, LeastFavourable, LossExponent, least_favourable
from bayescmoe.theory.mtm import PosteriorPrompts, atom_distance, merge_truncate_merge, posterior_prompts
from bayescmoe.theory.rates import STRONGLY_IDENTIFIABLE, Rate, theoretical_rates
from bayescmoe.theory.voronoi import (
    CELL_POWER,
    R_EXPONENT,
    VoronoiLoss,
    cell_errors,
    prompt_atoms,
    voronoi_cells,
    voronoi_loss,
)

__version__ = "0.2.0"

__all__ = [
    # specs and data
    "DEFAULT_BOUNDS",
    "LOSSES",
    "Covariates",
    "Layout",
    "Pretrained",
    "Prompt",
    "Schedule",
    "Spec",
    "list_specs",
    "load_spec",
    "spec_from_dict",
    "EXPERTS",
    "Expert",
    "get_expert",
    "FAMILIES",
    "Family",
    "get_family",
    "residual_scale",
    "check_data",
    "check_f0",
    "check_covariates",
    "check_response",
    "check_f0_mean",
    "as_array",
    "take_rows",
    "read_columns",
    "read_csv",
    "write_csv",
    "draw_covariates",
    "gate_probability",
    "mixture_weights",
    "prompt_means",
    "simulate",
    "simulate_at",
    # the model and its estimators
    "build_model",
    "loglik",
    "Prior",
    "WEAK_PRIORS",
    "resolve_priors",
    "free_shape",
    "canonical",
    "relabel",
    "fit_mle",
    "fit_map",
    "fit_em",
    "Units",
    "NU_FLOOR",
    "standard_spec",
    "start_count",
    "partition_starts",
    "nested_starts",
    "split_starts",
    "split_merge_starts",
    "from_responsibilities",
    "FitResult",
    "ContaminatedMoE",
    "prompt_experts",
    "SAMPLERS",
    "Diagnostics",
    "diagnose",
    "posterior_sd",
    "sample_posterior",
    # fine-tuning a frozen model
    "predictive_scale",
    "frozen_logpdf",
    "compare_prompts",
    "PromptChoice",
    "PromptRow",
    "prompt_overlap",
    "PromptOverlap",
    "OneThread",
    "load_diamonds",
    "AdaptationTask",
    "DiamondsTask",
    "adaptation_task",
    "diamonds_task",
    "compare_adaptations",
    "choose_prompts",
    "AdaptationComparison",
    # identifiability, information, losses and theory
    "DistinguishabilityResult",
    "FisherInformation",
    "StrongIdentifiabilityResult",
    "check_distinguishability",
    "check_strong_identifiability",
    "delta_scan",
    "fisher_information",
    "merge_direction",
    "prompt_at",
    "proposition_1",
    "expected_information",
    "predicted_losses",
    "QuadratureDesign",
    "asymptotic_sd",
    "DEFAULT_DELTAS",
    "PAPER_EXPONENTS",
    "LeastFavourable",
    "LossExponent",
    "least_favourable",
    "GRID",
    "N_X",
    "WIDTH",
    "evaluate_losses",
    "hellinger",
    "parameter_losses",
    "voronoi_loss",
    "select_prompts",
    "cell_counts",
    "Dendrogram",
    "Level",
    "dissimilarity",
    "merge_atoms",
    "posterior_prompts",
    "merge_truncate_merge",
    "atom_distance",
    "prompt_atoms",
    "PosteriorPrompts",
    "CELL_POWER",
    "cell_errors",
    "voronoi_losses",
    "voronoi_cells",
    "VoronoiLoss",
    "R_EXPONENT",
    "STRONGLY_IDENTIFIABLE",
    "Rate",
    "theoretical_rates",
    # studies
    "RateRow",
    "RateStudy",
    "Start",
    "empirical_rate",
    "n_grid",
    "rate_table",
    "run_rates",
    "schedule_variant",
    "Plan",
    "reproduce",
    "Store",
    "StoreError",
    "PAPER_DELTA_SLOPES",
    "WIDE_PRIORS",
    "WideningStudy",
    "counterpart",
    "params_at_delta",
    "widening",
    "coupling",
    "gating_comparison",
    "plot_study",
    "plot_widening",
    "plot_gate",
    "gate_points",
    # errors and warnings
    "BayescmoeError",
    "BoundaryWarning",
    "ConvergenceWarning",
    "DataError",
    "FitError",
    "IdentifiabilityWarning",
    "DegenerateWarning",
    "LabelSwitchingWarning",
    "ScaleWarning",
    "OutlierWarning",
    "SpecError",
]
