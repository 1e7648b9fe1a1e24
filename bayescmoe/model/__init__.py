"""The model layer: what a spec declares and how its likelihood is computed.

The spec (frozen dataclasses) and its TOML reading, the parameter layout, experts, families, priors,
simulation, data checks, label rules, the units of a user's data, the ``pm.Model`` and the compiled
likelihood kernel.  It imports no other layer (only :mod:`bayescmoe.exceptions`).
"""
