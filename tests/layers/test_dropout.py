"""The private `Dropout` layer: flax's `nn.Dropout` under the same key, off when deterministic."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mobius_jax.layers._dropout import Dropout


def test_the_layer_matches_flax_and_is_off_when_deterministic():
  x = jnp.ones((3, 10))
  rngs = {"dropout": jax.random.key(3)}
  ours = Dropout(0.5).apply({}, x, deterministic=False, rngs=rngs)
  flax = nn.Dropout(0.5).apply({}, x, deterministic=False, rngs=rngs)
  chex.assert_trees_all_close(ours, flax)
  assert (ours == 0).any()
  np.testing.assert_array_equal(Dropout(0.5, deterministic=True).apply({}, x), x)
  with pytest.raises(Exception, match="dropout"):
    Dropout(0.5).apply({}, x, deterministic=False)  # no "dropout" stream
