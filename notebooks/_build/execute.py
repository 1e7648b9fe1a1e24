"""Execute a notebook in place, at full scale, keeping its outputs (the committed version).

python notebooks/_build/execute.py notebooks/01_distinguishable_rates.ipynb
"""

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

for name in sys.argv[1:]:
    path = Path(name).resolve()
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=7200, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    nbformat.write(nb, path)
    print(f"executed {path}")
