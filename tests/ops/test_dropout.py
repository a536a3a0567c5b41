"""`dropout` and the `Dropout` layer: the masks and values of flax's dropout."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mobius_jax.layers import Dropout
from mobius_jax.ops import dropout
from mobius_jax.ops.dropout import bernoulli, threefry_bits


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_dropout_drops_what_flax_drops_and_scales_the_rest(dtype):
  x = jax.random.normal(jax.random.key(0), (4, 16, 32), dtype) + 3.0  # no zeros of its own
  key = jax.random.key(1)
  ours = dropout(x, 0.25, key)
  # flax.linen.Dropout's arithmetic for one key.
  keep = jax.random.bernoulli(key, 0.75, x.shape)
  flax = jnp.where(keep, x / 0.75, 0)
  assert ours.dtype == dtype and ours.shape == x.shape
  np.testing.assert_array_equal(ours != 0, keep)
  assert 0.2 < float((ours == 0).mean()) < 0.3
  tol = 1e-6 if dtype == jnp.float32 else 1e-2
  chex.assert_trees_all_close(ours, flax, rtol=tol)


@pytest.mark.parametrize("shape", [(), (7,), (3, 5, 11), (2, 4, 16, 16)])
def test_bernoulli_draws_jax_randoms_bits(shape):
  draw = jax.jit(bernoulli, static_argnums=(1, 2))
  for key in (jax.random.key(0), jax.random.PRNGKey(42), jax.random.fold_in(jax.random.key(7), 3)):
    for p in (0.9, 0.5, 0.123, 0.0, 1.0):
      np.testing.assert_array_equal(draw(key, p, shape), jax.random.bernoulli(key, p, shape))


def test_threefry_bits_are_jax_randoms_and_other_prngs_are_left_to_jax():
  key = jax.random.fold_in(jax.random.key(5), 11)
  np.testing.assert_array_equal(
    threefry_bits(jax.random.key_data(key), 1000), jax.random.bits(key, (1000,), jnp.uint32)
  )
  rbg = jax.random.key(5, impl="rbg")
  np.testing.assert_array_equal(bernoulli(rbg, 0.7, (40,)), jax.random.bernoulli(rbg, 0.7, (40,)))
  with jax.enable_x64(True):  # float64 uniforms: other bits
    np.testing.assert_array_equal(bernoulli(key, 0.7, (40,)), jax.random.bernoulli(key, 0.7, (40,)))


def test_the_gradient_is_the_scaled_mask():
  x = jax.random.normal(jax.random.key(0), (8, 16))
  key = jax.random.key(2)
  grad = jax.grad(lambda x: dropout(x, 0.5, key).sum())(x)
  kept = dropout(jnp.ones_like(x), 0.5, key) != 0
  chex.assert_trees_all_close(grad, jnp.where(kept, 2.0, 0.0))


def test_rate_zero_is_the_identity_and_a_bad_rate_is_refused():
  x = jnp.arange(6.0)
  assert dropout(x, 0.0, jax.random.key(0)) is x
  for rate in (-0.1, 1.0):
    with pytest.raises(ValueError, match=r"dropout rate must be in \[0, 1\)"):
      dropout(x, rate, jax.random.key(0))


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
