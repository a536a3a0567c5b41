"""Test set-up: a fake 8-device CPU mesh, fast compiles and hypothesis profiles sized for CI."""

import os

# Both must be set before jax is first imported. Sharding tests run on 8 fake CPU devices, and
# the tests' small shapes run faster with cheap compiles than with optimised code.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
os.environ["XLA_FLAGS"] = " ".join(
  [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=8"]
).strip()

from hypothesis import settings

# No deadline: the first call of a jax function compiles, which hypothesis would flag as slow.
settings.register_profile("default", max_examples=40, deadline=None)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
