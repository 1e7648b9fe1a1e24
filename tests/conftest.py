"""Test configuration.

PyMC compiles models with pytensor's default linker, Numba, whose cold compile
takes minutes; the tests that compile ``pm.Model`` graphs use the C VM instead,
unless the caller chose a mode in PYTENSOR_FLAGS (and gcc's -O1, unless it chose flags).  (The estimators pick their
own mode, see bayescmoe.model.kernel.compile_mode.)
"""

import os

if "mode=" not in os.environ.get("PYTENSOR_FLAGS", ""):
    os.environ["PYTENSOR_FLAGS"] = ",".join(filter(None, [os.environ.get("PYTENSOR_FLAGS"), "mode=CVM"]))
# and at gcc's -O1 (after pytensor's -O3; the estimators' kernels pin -O3, bayescmoe.model.kernel.OPTIMIZE): on a
# cold cache the suite spends minutes compiling PyMC's graphs, which -O1 compiles in about three quarters of the time
if "gcc__cxxflags=" not in os.environ["PYTENSOR_FLAGS"]:
    os.environ["PYTENSOR_FLAGS"] += ",gcc__cxxflags=-O1"

# one OpenMP thread per process: `-n 2` runs two workers on two cores, and a kernel that splits its loop over two
# threads beside a busy worker waits at every barrier (tests/fit/test_prompts.py and tests/model/test_units.py: 142 s
# with OpenMP's default, 104 s with one thread; benchmarks/RESULTS.md, "The test suite's time")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest


def pytest_collection_modifyitems(config, items):
    """The tests marked ``slow`` first: under ``-n 2`` a long test dealt out last leaves one worker idle."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def rng():
    return np.random.default_rng(20261123)
