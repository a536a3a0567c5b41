"""Sharding and bfloat16 equalities on optimised code (XLA's optimisations on).

Everywhere else the suite runs with most optimisations off (conftest), a setting jax reads when
it is imported; so `tests/e2e/optimised_checks.py` measures these in a subprocess without it, and
the tests here read what it printed.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests.e2e.optimised_checks import PRESETS, TRAIN_PRESETS

ROOT = pathlib.Path(__file__).parents[2]


@pytest.fixture(scope="module")
def results() -> dict:
  env = {k: v for k, v in os.environ.items() if k != "JAX_DISABLE_MOST_OPTIMIZATIONS"}
  # XLA_FLAGS, inherited, asks for conftest's 8 fake devices.
  result = subprocess.run(
    [sys.executable, "-m", "tests.e2e.optimised_checks"],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.splitlines()[-1])


def test_the_checks_ran_optimised_on_8_devices(results):
  assert results["optimisations off"] is False and results["devices"] == 8


@pytest.mark.parametrize("preset", PRESETS)
def test_sharded_forward_pass_equals_one_devices(results, preset):
  assert results[preset]["sharded loss"] < 1e-5
  assert results[preset]["sharded logits"] < 1e-5


@pytest.mark.xfail(
  strict=True,
  reason="known: on the 2 × 2 × 2 mesh (jax 0.10.2, optimised or not), jax.grad of this loss "
  "is off by 55 % (BERT) and 20 % (MöbiusBERT) of the largest gradient, and MöbiusBERT's forward "
  "pass under jax.grad too; every 2-axis mesh agrees with one device, and so does the train step",
)
@pytest.mark.parametrize("preset", PRESETS)
def test_sharded_gradients_equal_one_devices(results, preset):
  assert results[preset]["sharded gradients, relative to the largest"] < 1e-5


@pytest.mark.parametrize("preset", PRESETS)
def test_bfloat16_forward_pass_stays_close_to_float32(results, preset):
  assert results[preset]["bfloat16 logits, in float32 logits' std"] < 0.15


@pytest.mark.parametrize("preset", TRAIN_PRESETS)
def test_sharded_train_steps_give_one_devices_losses(results, preset):
  one_device, mesh = results[preset]["train losses"]
  assert mesh == pytest.approx(one_device, abs=1e-5)
