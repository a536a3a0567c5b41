"""Each benchmark script runs end to end on its tiniest setting and prints its table.

Subprocesses, because the scripts set up jax themselves (scaling.py asks for fake devices
before importing it). They inherit conftest's fast-compile setting.
"""

import pathlib
import subprocess
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).parents[1] / "benchmarks"


def run(script: str, *args: str) -> str:
  result = subprocess.run(
    [sys.executable, str(BENCHMARKS / script), *args],
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def table_rows(output: str) -> list[list[str]]:
  """The cells of a markdown table's body rows."""
  lines = [line for line in output.splitlines() if line.startswith("| ")]
  return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


def test_attention_layer():
  args = ("--lengths", "16", "--tokens", "32", "--hidden", "16", "--heads", "2", "--repeats", "1")
  (row,) = table_rows(run("attention_layer.py", *args))
  assert row[0] == "16" and row[5].endswith("×")


@pytest.mark.slow
def test_train_step():
  args = ("--sizes", "tiny", "--batch", "2", "--length", "16", "--repeats", "1")
  out = run("train_step.py", *args, "--variants", "hf bert", "bert")
  rows = table_rows(out)
  assert [row[1] for row in rows] == ["hf bert", "bert"]


@pytest.mark.slow
def test_scaling_losses_match_one_device():
  args = ("--models", "bert-tiny", "--shardings", "data", "--devices", "1", "2")
  out = run("scaling.py", *args, "--batch", "2", "--length", "16", "--repeats", "1")
  rows = table_rows(out)
  assert [row[2] for row in rows] == ["1", "2"]
  assert all(float(row[5]) < 1e-4 for row in rows)


@pytest.mark.slow
def test_gpu_script_smoke(tmp_path):
  run("gpu.py", "--smoke", "--out", str(tmp_path))
  assert (tmp_path / "gpu.json").exists() and "bert-tiny" in (tmp_path / "gpu.md").read_text()
