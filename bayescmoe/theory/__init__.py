"""The theory layer: the exponents of MODEL.md section 4, the losses, Fisher information,
distinguishability and strong identifiability, least favourable truths.  It imports only
:mod:`bayescmoe.model` and :mod:`bayescmoe.fit` (and the exceptions).
"""
