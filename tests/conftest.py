"""Test set-up: a fake 8-device CPU mesh, fast compiles, hypothesis profiles sized for CI, and
no silently skipped PyTorch parity tests where torch is required."""

import os

# Both must be set before jax is first imported. Sharding tests run on 8 fake CPU devices, and
# the tests' small shapes run faster with cheap compiles than with optimised code.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
os.environ["XLA_FLAGS"] = " ".join(
  [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=8"]
).strip()

import pytest
from hypothesis import settings

# No deadline: the first call of a jax function compiles, which hypothesis would flag as slow.
settings.register_profile("default", max_examples=40, deadline=None)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# CI installs torch and sets this: there, a test skipped for want of torch (the PyTorch parity
# tests importorskip it) fails instead, so that a broken torch install cannot pass unnoticed.
REQUIRE_TORCH = os.environ.get("MOBIUS_JAX_REQUIRE_TORCH") == "1"


def fail_torch_skips(report):
  if (
    REQUIRE_TORCH
    and report.skipped
    and not hasattr(report, "wasxfail")
    and "torch" in str(report.longrepr)
  ):
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome = "failed"
    report.longrepr = f"MOBIUS_JAX_REQUIRE_TORCH=1 requires torch, yet: {reason}"
  return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
  return fail_torch_skips((yield))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
  return fail_torch_skips((yield))
