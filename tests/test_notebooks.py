"""Notebooks are executed on a small sample so they cannot rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory, data_dir) -> Path:
    frame = pd.read_csv(data_dir / "tipdm2020c" / "appeals_labelled.csv", dtype=str, keep_default_na=False)
    path = tmp_path_factory.mktemp("nb") / "sample.csv"
    frame.sample(n=300, random_state=0).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def small_ensemble(small_sample, tmp_path_factory) -> Path:
    """An ensemble bundle (linear + a tiny random transformer) trained on the small sample, for 02."""
    pytest.importorskip("torch")
    import subprocess
    import sys

    from tests.tiny_encoder import build_tiny_encoder

    frame = pd.read_csv(small_sample, dtype=str, keep_default_na=False)
    work = tmp_path_factory.mktemp("ens")
    encoder = build_tiny_encoder(work / "encoder", list(frame["title"] + frame["text"]))
    result = subprocess.run([sys.executable, "-m", "serving.cli", "train", "--kind", "ensemble", "--data",
                             str(small_sample), "--out", str(work / "bundle"), "--base-model", str(encoder),
                             "--epochs", "1", "--max-length", "64"], capture_output=True, text=True, cwd=ROOT,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    return work / "bundle"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_a_small_sample(path, small_sample, tmp_path, request):
    notebook = nbformat.read(path, as_version=4)
    parameters = [c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert parameters, f"{path.name} has no cell tagged 'parameters'"
    source = f"DATA = {str(small_sample)!r}\nOUT = {str(tmp_path)!r}\n"
    if "MODEL" in parameters[0].source:
        source += f"MODEL = {str(request.getfixturevalue('small_ensemble'))!r}\n"
    parameters[0].source = source
    client = NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "notebooks")}})
    client.execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert list(tmp_path.glob("*.png")), "the notebook saved no figures"


def test_notebooks_are_stored_without_outputs():
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), path.name
