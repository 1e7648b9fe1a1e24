"""The public surface: everything public is importable from the top-level package (MODEL.md section 7)."""

import importlib
import pkgutil

import bayescmoe as bc

#: Internal machinery, documented as such in the modules' docstrings, and the command line.
INTERNAL = {"bayescmoe.fit.optimize", "bayescmoe.fit.partitioned", "bayescmoe.studies.executors", "bayescmoe.cli"}


def internal(name):
    return name in INTERNAL or name.startswith("bayescmoe.cli.")


def public_modules():
    for info in pkgutil.walk_packages(bc.__path__, "bayescmoe."):
        if not internal(info.name) and not info.ispkg:
            yield importlib.import_module(info.name)


def test_every_public_name_is_importable_from_the_package():
    missing = []
    for module in public_modules():
        for name in getattr(module, "__all__", ()):
            if getattr(bc, name, None) is not getattr(module, name):
                missing.append(f"{module.__name__}.{name}")
    assert not missing, f"not re-exported by bayescmoe: {missing}"


def test_the_package_all_lists_what_it_exports():
    assert len(set(bc.__all__)) == len(bc.__all__)
    assert all(hasattr(bc, name) for name in bc.__all__)
    exported = {name for module in public_modules() for name in getattr(module, "__all__", ())}
    assert exported <= set(bc.__all__)


def test_the_functions_of_model_md_sections_5_and_6():
    spec = bc.load_spec("softmax_eta_merging")
    assert bc.check_distinguishability(spec, n_points=500).distinguishable is False
    assert bc.check_strong_identifiability("relu").strongly_identifiable is False
    info = bc.fisher_information(spec, n_mc=5000)
    assert info.matrix.shape == (spec.n_params, spec.n_params)


def test_every_public_module_declares_its_surface():
    assert all(hasattr(module, "__all__") for module in public_modules())
