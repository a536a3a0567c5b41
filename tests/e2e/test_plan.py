"""`python -m train.plan`: a tiny config compiled for a small TPU slice where libtpu is installed
(the [tpu] extra), its errors, and the search for the largest batch. Without libtpu (CI's
environment) the command must say how to install it."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

from train.core import search

ROOT = pathlib.Path(__file__).resolve().parents[2]
HAS_LIBTPU = importlib.util.find_spec("libtpu") is not None
needs_libtpu = pytest.mark.skipif(not HAS_LIBTPU, reason="needs libtpu (the [tpu] extra)")
TINY = ["--config", "configs/default.py", "--config.model=bert-tiny", "--config.batch_size=64"]


def run_plan(*args, hide_libtpu=False, timeout=600):
  """The command in a subprocess, with the environment of a user's shell (not the tests')."""
  tests_only = ("XLA_FLAGS", "JAX_DISABLE_MOST_OPTIMIZATIONS")  # conftest's
  env = {k: v for k, v in os.environ.items() if k not in tests_only}
  # As where libtpu is not installed: its import finds nothing.
  prefix = "import sys; sys.modules['libtpu'] = None; " if hide_libtpu else ""
  program = prefix + "import runpy; runpy.run_module('train.plan', run_name='__main__')"
  return subprocess.run(
    [sys.executable, "-c", program, *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )


def test_without_libtpu_says_how_to_install_it():
  result = run_plan(*TINY, "--topology", "v5e:2x2", hide_libtpu=True)
  assert result.returncode != 0
  assert "libtpu package, which is not installed" in result.stderr
  assert 'pip install -c constraints.txt -e ".[tpu]"' in result.stderr
  assert "Traceback" not in result.stderr


@needs_libtpu
def test_tiny_config_on_a_v5e_2x2_slice(tmp_path):
  out = tmp_path / "plan.json"
  result = run_plan(*TINY, "--topology", "v5e:2x2", "--nobisect", "--json", str(out))
  assert result.returncode == 0, result.stderr[-3000:]
  text = result.stdout
  assert "4 × TPU v5e, mesh data 4 × fsdp 1 × tensor 1" in text
  assert "The compiler accepts the program: fits" in text
  assert "step time (the compiler's estimate, `optimal_seconds`)" in text
  found = json.loads(out.read_text())
  step = found["step"]
  assert step["fits"] and step["batch_size"] == 64
  assert 0 < step["memory"]["total"] < found["hbm_bytes"]
  assert step["param_bytes"] > 0 and step["opt_bytes"] == pytest.approx(2 * step["param_bytes"])
  assert step["cost"]["flops"] > 0 and step["cost"]["optimal_seconds"] > 0
  assert step["collectives"]["all-reduce"][0] > 0  # the data-parallel gradient reduction
  assert 0 < found["estimates"]["mfu"] < 1
  assert found["compiler_hbm_bytes"] == pytest.approx(15.75 * 2**30)


@needs_libtpu
def test_splash_attention_and_the_largest_batch(tmp_path):
  """MöbiusBERT-tiny on the splash kernel, FSDP over 2 chips; the search up to its limit."""
  out = tmp_path / "plan.json"
  result = run_plan(
    *TINY,
    "--config.model=mobius_bert-tiny",
    "--config.mesh.fsdp=2",
    "--topology=v5e:2x2",
    "--model_override",
    "attention_implementation=splash",
    "--max_rows_per_chip=32",
    "--json",
    str(out),
  )
  assert result.returncode == 0, result.stderr[-3000:]
  found = json.loads(out.read_text())
  assert found["attention"] == "splash" and found["mesh"] == {"data": 2, "fsdp": 2, "tensor": 1}
  assert "XLA's count leaves out the splash kernel's FLOPs" in result.stdout
  assert found["largest_batch"] == 32 * 4  # the search's limit: 32 rows on each of 4 chips
  assert [rows for rows, _ in found["probes"]] == [64, 128]


@needs_libtpu
@pytest.mark.parametrize(
  ("topology", "message"),
  [("v9:2x2", "Unknown TPU topology 'v9:2x2'"), ("v5e:3x3", "libtpu refuses the TPU topology")],
)
def test_unknown_topology_lists_the_known_ones(topology, message):
  result = run_plan(*TINY, "--topology", topology)
  assert result.returncode != 0
  assert message in result.stderr and "v5e:16x16" in result.stderr and "v5p:4x4x8" in result.stderr


def test_splash_refuses_attention_dropout():
  """The model's check names both fields, before anything needs libtpu."""
  result = run_plan(
    *TINY,
    "--topology=v5e:2x2",
    "--model_override",
    "attention_implementation=splash",
    "--config.model_overrides.attention_dropout=0.1",
    hide_libtpu=True,
  )
  assert result.returncode != 0
  assert "attention_implementation='splash'" in result.stderr
  assert "attention_dropout=0.1" in result.stderr
  assert "Traceback" not in result.stderr


def linear_memory(answer: int):
  """A probe where memory grows linearly with the batch and exactly `answer` fits."""
  capacity = 1000.0 + 10.0 * answer + 5.0

  def probe(rows):
    memory = 1000.0 + 10.0 * rows
    return memory <= capacity, memory

  return probe, capacity


@pytest.mark.parametrize("answer", [1, 12, 16, 40, 150, 999])
@pytest.mark.parametrize("with_capacity", [True, False])
def test_largest_fitting_finds_the_largest_multiple(answer, with_capacity):
  unit = 4
  probe, capacity = linear_memory(answer * unit)
  largest, probes = search.largest_fitting(
    probe, unit, 16 * unit, limit=512 * unit, capacity=capacity if with_capacity else None
  )
  assert largest == min(answer, 512) * unit
  assert all(value % unit == 0 for value, _ in probes)
  if with_capacity and 32 < answer < 512:
    assert len(probes) <= 4  # the start, its double, the prediction, one step beyond


def test_largest_fitting_when_nothing_fits():
  largest, probes = search.largest_fitting(lambda rows: (False, None), 8, 64)
  assert largest is None and [value for value, _ in probes] == [64, 32, 16, 8]
