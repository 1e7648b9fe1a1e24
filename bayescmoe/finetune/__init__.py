"""Fine-tuning a frozen real model: the estimator ``ContaminatedMoE``, predictive scale,
``compare_prompts``, ``prompt_overlap`` and the real-data study.  It imports the layers below it
(model, fit, theory), never :mod:`bayescmoe.studies` or :mod:`bayescmoe.cli`.
"""
