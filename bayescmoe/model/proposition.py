"""Proposition 1 of arXiv 2505.18455, read off a spec alone: can the prompt reproduce the frozen expert?

It needs nothing but the spec, so it sits in the model layer, where the fit's summary
(:meth:`bayescmoe.FitResult.summary`) and the theory (:mod:`bayescmoe.theory.rates`,
:mod:`bayescmoe.theory.identifiability`) both read it.
"""

from __future__ import annotations

from bayescmoe.model.spec import Spec

__all__ = ["proposition_1"]


def proposition_1(spec: Spec, k: int | None = None) -> bool | None:
    """Proposition 1's verdict on distinguishability: True when f0 is not Gaussian, False when f0 is
    Gaussian and the prompt can reproduce its mean (the same expert, and an intercept if the
    pre-trained one is not 0), None when it does not decide (or there is no frozen expert, or its mean
    is a model's predictions).  With several prompts: prompt ``k`` (0-based), or, by default, False if
    any prompt can reproduce f0, True if none can, None otherwise."""
    pre = spec.pretrained
    if pre is None:
        return None
    if pre.family != "normal":
        return True
    if pre.mean_from_data:
        return None
    verdicts = []
    for prompt in spec.prompts if k is None else [spec.prompts[k]]:
        same = pre.expert == prompt.expert and (prompt.intercept or pre.intercept == 0.0)
        verdicts.append(False if same else None)
    return False if False in verdicts else None
