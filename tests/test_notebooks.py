"""Every notebook in docs/notebooks/ runs as a plain script and is a valid jupytext percent notebook.

The notebooks are the learning path through the gradients; a notebook that no longer runs is a broken page.
Each runs in its own process, as a reader would run it (``python docs/notebooks/01_dense.py``), with the
non-interactive matplotlib backend.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "docs" / "notebooks").glob("*.py"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 8


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs(notebook, tmp_path):
    environment = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "NUMBA_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, str(notebook)], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{notebook.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_a_percent_notebook_with_a_title(notebook):
    text = notebook.read_text()
    assert "# %% [markdown]\n# # " in text, f"{notebook.name}: the first markdown cell should be a '# ' title"
    jupytext = pytest.importorskip("jupytext")
    cells = jupytext.read(notebook).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    assert sum(cell.cell_type == "code" for cell in cells) >= 3
