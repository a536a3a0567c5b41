"""`ComplexDense` and `ComplexScale`: complex matrix products and per-dimension scales."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mobius_jax.layers import ComplexDense, ComplexScale
from mobius_jax.sharding import HEADS, MLP


def pair(seed, *shape):
  return tuple(jax.random.normal(jax.random.key(seed + i), shape) for i in range(2))


def complex_of(p):
  return jax.lax.complex(*p)


def test_complex_dense_is_a_complex_matrix_product():
  z = pair(0, 2, 3, 8)
  layer = ComplexDense(5, axes=(HEADS, MLP))
  params = nn.meta.unbox(layer.init(jax.random.key(1), z))["params"]
  params["bias_real"] = jnp.arange(5.0)
  params["bias_imag"] = -jnp.arange(5.0)
  w = jax.lax.complex(params["kernel_real"], params["kernel_imag"])
  b = jax.lax.complex(params["bias_real"], params["bias_imag"])
  out = layer.apply({"params": params}, z)
  np.testing.assert_allclose(complex_of(out), complex_of(z) @ w + b, atol=1e-5)


def test_complex_scale_multiplies_each_dimension():
  z = pair(0, 2, 3, 4)
  layer = ComplexScale(axis=HEADS)
  params = nn.meta.unbox(layer.init(jax.random.key(1), z))["params"]
  np.testing.assert_allclose(complex_of(layer.apply({"params": params}, z)), complex_of(z))
  params = {"scale": jnp.array([[1.0, 2, 0, -1], [0, 1, 3, 0]]), "bias": jnp.ones((2, 4))}
  w, b = complex_of(params["scale"]), complex_of(params["bias"])
  out = layer.apply({"params": params}, z)
  np.testing.assert_allclose(complex_of(out), complex_of(z) * w + b, atol=1e-6)
