"""Test configuration.

PyMC compiles models with pytensor's default linker, Numba, whose cold compile
takes minutes; the tests that compile ``pm.Model`` graphs use the C VM instead,
unless the caller chose a mode in PYTENSOR_FLAGS.  (The estimators pick their
own mode, see bayescmoe.model.kernel.compile_mode.)
"""

import os

if "mode=" not in os.environ.get("PYTENSOR_FLAGS", ""):
    os.environ["PYTENSOR_FLAGS"] = ",".join(filter(None, [os.environ.get("PYTENSOR_FLAGS"), "mode=CVM"]))

import numpy as np
import pytest


def pytest_collection_modifyitems(config, items):
    """The tests marked ``slow`` first: under ``-n 2`` a long test dealt out last leaves one worker idle."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def rng():
    return np.random.default_rng(20261123)
