"""docs/notebook.ipynb runs from top to bottom without an error, so it cannot rot.

It is executed in a fresh Jupyter kernel (ipykernel's ``python3``: jupyter_client starts it with this
interpreter) in a temporary folder, one thread, importing the same rnnlab as these tests. The notebook
is stored without outputs; cells that need a bundled model that is absent print a note and skip.
"""

import os
import time
from pathlib import Path

import pytest

import rnnlab

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebook.ipynb"


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert 8 <= len(nb.cells) <= 14


def test_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # The kernel imports the rnnlab these tests import (a checkout's src/ or the installed package).
    src = str(Path(rnnlab.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    seconds = time.perf_counter() - t0
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "bundled models:" in text
    if "names" in rnnlab.bundled_models():
        assert "Satoshi: Japanese" in text
        assert any("image/png" in o.get("data", {}) for o in outputs)  # the trace heatmap
    assert "max |difference|" in text and "Takahashi" in text
    have = rnnlab.bundled_models()
    assert ("skipped: no bundled 'poems'" in text) != ("poems" in have)
    assert ("every word's effect" in text) == ("sentiment" in have)
    print(f"notebook executed in {seconds:.1f} s")
