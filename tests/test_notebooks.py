"""The notebooks run top to bottom headless, and are stored without outputs."""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((pathlib.Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_the_notebooks_are_there():
  assert {path.name for path in NOTEBOOKS} == {"mobius_maps.ipynb", "quickstart.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_stored_without_outputs(path):
  notebook = nbformat.read(path, as_version=4)
  for i, cell in enumerate(notebook.cells):
    if cell.cell_type == "code":
      assert cell.outputs == [] and cell.execution_count is None, (
        f"{path.name} cell {i} holds outputs: clear them before committing "
        "(`jupyter nbconvert --clear-output --inplace notebooks/*.ipynb`)."
      )
  assert "widgets" not in notebook.metadata


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs(path, monkeypatch):
  # The kernel inherits the environment: run it as a user would, on one device with optimised
  # code, not with the suite's 8 fake devices and cheap compiles.
  monkeypatch.delenv("JAX_DISABLE_MOST_OPTIMIZATIONS", raising=False)
  monkeypatch.setenv(
    "XLA_FLAGS",
    " ".join(
      flag
      for flag in os.environ.get("XLA_FLAGS", "").split()
      if not flag.startswith("--xla_force_host_platform_device_count")
    ),
  )
  notebook = nbformat.read(path, as_version=4)
  client = NotebookClient(
    notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": path.parent}}
  )
  client.execute()  # raises CellExecutionError, with the cell and its traceback, on failure
  images = [
    output
    for cell in notebook.cells
    if cell.cell_type == "code"
    for output in cell.outputs
    if "image/png" in output.get("data", {})
  ]
  assert images, f"{path.name} showed no figure"
