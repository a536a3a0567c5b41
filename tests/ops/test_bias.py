"""`add_bias`: the values and gradients of `x + bias`, its bias gradient a matrix product."""

import chex
import jax
import jax.numpy as jnp
import pytest

from mobius_jax.ops import add_bias


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_add_bias_matches_the_plain_sum_in_value_and_gradient(dtype):
  x = jax.random.normal(jax.random.key(0), (3, 5, 7), dtype)
  bias = jax.random.normal(jax.random.key(1), (7,))  # float32, as a parameter
  weights = jax.random.normal(jax.random.key(2), (3, 5, 7))

  def loss(add, x, bias):
    return (add(x, bias).astype(jnp.float32) * weights).sum()

  plain = lambda x, bias: x + bias.astype(x.dtype)  # noqa: E731
  out = add_bias(x, bias)
  assert out.dtype == dtype and out.shape == x.shape
  chex.assert_trees_all_close(out, plain(x, bias))
  ours, reference = (jax.grad(loss, argnums=(1, 2))(f, x, bias) for f in (add_bias, plain))
  assert ours[1].dtype == jnp.float32  # the bias gradient in the bias's dtype
  tol = 1e-5 if dtype == jnp.float32 else 3e-2
  chex.assert_trees_all_close(ours, reference, rtol=tol, atol=tol)


def test_the_bias_gradient_is_a_matrix_product_not_a_reduction():
  x, bias = jnp.ones((4, 6)), jnp.zeros(6)

  def bias_gradient(bias, dy):
    return jax.vjp(lambda b: add_bias(x, b), bias)[1](dy)

  jaxpr = str(jax.make_jaxpr(bias_gradient)(bias, jnp.ones((4, 6))))
  assert "dot_general" in jaxpr and "reduce_sum" not in jaxpr
