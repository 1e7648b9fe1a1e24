"""The fit layer: the projected Newton optimiser, MLE/MAP with starts and multistart, EM, ``FitResult``
and NUTS posteriors with their diagnostics.  It imports only :mod:`bayescmoe.model` (and the exceptions).
"""
