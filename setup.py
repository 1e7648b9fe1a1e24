"""The packages of the wheel: every package under bayescmoe/ discovered (a new layer folder cannot be left
out), and the named specs in models/ shipped as the package bayescmoe.models (model/spec.py reads them with
importlib.resources).  pyproject.toml holds the rest of the configuration; setuptools' own
[tool.setuptools.packages.find] cannot add a package from outside the discovered tree, hence this file.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["bayescmoe", "bayescmoe.*"]), "bayescmoe.models"],
    package_dir={"bayescmoe.models": "models"},
)
