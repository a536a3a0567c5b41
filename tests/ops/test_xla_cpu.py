"""`mobius_jax.ops._xla_cpu`: dropout and the bias add in their CPU and default forms.

Dropout drops what flax's dropout drops, and scales the rest; the bias add is `x + bias` in
value and gradient, its CPU bias gradient a matrix product. The CPU forms (`_cpu_dropout`,
`_cpu_add_bias`) and the forms every other backend lowers to (`_flax_dropout`, `x + bias`) agree,
and the non-CPU branch lowers (exported for CUDA and TPU from this CPU).
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mobius_jax.ops._xla_cpu import (
  _cpu_add_bias,
  _cpu_dropout,
  _flax_dropout,
  add_bias,
  bernoulli,
  dropout,
  threefry_bits,
)

# ----------------------------------------------------------------------------------- dropout


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


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_the_cpu_and_default_dropout_forms_agree(dtype, rate):
  x = jax.random.normal(jax.random.key(0), (3, 8, 40), dtype) + 3.0  # no zeros of its own
  key = jax.random.fold_in(jax.random.key(4), 9)
  cpu = jax.jit(_cpu_dropout, static_argnames="rate")(x, key, rate=rate)
  default = jax.jit(_flax_dropout, static_argnames="rate")(x, key, rate=rate)
  assert cpu.dtype == default.dtype == dtype and cpu.shape == default.shape == x.shape
  np.testing.assert_array_equal(cpu != 0, default != 0)  # the same mask
  np.testing.assert_array_equal(cpu != 0, jax.random.bernoulli(key, 1 - rate, x.shape))
  tol = 1e-6 if dtype == jnp.float32 else 1e-2
  chex.assert_trees_all_close(cpu, default, rtol=tol)
  # The dispatcher, on this CPU, is the CPU form.
  np.testing.assert_array_equal(jax.jit(dropout, static_argnums=1)(x, rate, key), cpu)


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


# ---------------------------------------------------------------------------------- bias add


def _plain(x, bias):
  return x + bias.astype(x.dtype)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_add_bias_matches_the_plain_sum_in_value_and_gradient(dtype):
  x = jax.random.normal(jax.random.key(0), (3, 5, 7), dtype)
  bias = jax.random.normal(jax.random.key(1), (7,))  # float32, as a parameter
  weights = jax.random.normal(jax.random.key(2), (3, 5, 7))

  def loss(add, x, bias):
    return (add(x, bias).astype(jnp.float32) * weights).sum()

  out = add_bias(x, bias)
  assert out.dtype == dtype and out.shape == x.shape
  chex.assert_trees_all_close(out, _plain(x, bias))
  ours, reference = (jax.grad(loss, argnums=(1, 2))(f, x, bias) for f in (add_bias, _plain))
  assert ours[1].dtype == jnp.float32  # the bias gradient in the bias's dtype
  tol = 1e-5 if dtype == jnp.float32 else 3e-2
  chex.assert_trees_all_close(ours, reference, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_the_cpu_bias_add_equals_the_plain_sum_in_value_and_gradient(dtype):
  x = jax.random.normal(jax.random.key(3), (2, 4, 6, 9), dtype)
  bias = jax.random.normal(jax.random.key(4), (9,))
  dy = jax.random.normal(jax.random.key(5), x.shape, dtype)
  for add in (_cpu_add_bias, add_bias):
    out, vjp = jax.vjp(add, x, bias)
    reference, reference_vjp = jax.vjp(_plain, x, bias)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, reference)
    (dx, dbias), (dx_plain, dbias_plain) = vjp(dy), reference_vjp(dy)
    assert dx.dtype == dtype and dbias.dtype == jnp.float32
    np.testing.assert_array_equal(dx, dx_plain)  # dy itself
    tol = 1e-5 if dtype == jnp.float32 else 3e-2
    chex.assert_trees_all_close(dbias, dbias_plain.astype(jnp.float32), rtol=tol, atol=tol)


def test_the_bias_gradient_is_a_matrix_product_not_a_reduction():
  # The CPU form's: the dispatcher's jaxpr holds both forms (the default one's reduce_sum too).
  x, bias = jnp.ones((4, 6)), jnp.zeros(6)

  def bias_gradient(bias, dy):
    return jax.vjp(lambda b: _cpu_add_bias(x, b), bias)[1](dy)

  jaxpr = str(jax.make_jaxpr(bias_gradient)(bias, jnp.ones((4, 6))))
  assert "dot_general" in jaxpr and "reduce_sum" not in jaxpr


# --------------------------------------------------------------------- the non-CPU branches


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_the_default_forms_lower_for_other_platforms(platform):
  x, bias, key = jnp.ones((4, 8)), jnp.zeros(8), jax.random.key(0)
  exported = jax.export.export(jax.jit(lambda x, k: dropout(x, 0.5, k)), platforms=[platform])(
    x, key
  )
  assert exported.platforms == (platform,)
  assert exported.out_avals[0].shape == x.shape

  def bias_gradient(x, bias):
    return jax.grad(lambda b: add_bias(x, b).sum())(bias)

  exported = jax.export.export(jax.jit(bias_gradient), platforms=[platform])(x, bias)
  assert exported.platforms == (platform,)
  # There, the bias gradient is the plain sum's reduction, not the CPU form's product.
  assert "dot_general" not in exported.mlir_module()
  both = jax.export.export(jax.jit(bias_gradient), platforms=["cpu", platform])(x, bias)
  assert "dot_general" in both.mlir_module()
