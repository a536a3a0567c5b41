"""Complex building blocks: what each layer computes, and sharded against unsharded."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import mobius_jax as mj
from mobius_jax.layers import (
  ComplexDense,
  ComplexEncoderLayer,
  ComplexScale,
  EncoderLayer,
  LayerConfig,
  MobiusMap,
  MobiusSelfAttention,
)
from mobius_jax.sharding import DEFAULT_RULES, HEADS, MLP, make_mesh, use_mesh

CONFIG = LayerConfig(hidden_size=128, num_heads=2, intermediate_size=256)


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


def test_mobius_map_applies_its_coefficients_per_channel():
  z = pair(0, 2, 3, 4)
  layer = MobiusMap(eps=1e-6)
  params = nn.meta.unbox(layer.init(jax.random.key(1), z))["params"]
  c = params["coefficients"]
  a, b, cc, d = (jax.lax.complex(c[i, 0], c[i, 1]) for i in range(4))
  out = layer.apply({"params": params}, z)
  np.testing.assert_allclose(
    complex_of(out), mj.mobius_transform(complex_of(z), a, b, cc, d), rtol=1e-4, atol=1e-5
  )
  # Identity initialisation plus 0.01 noise: f(z) ≈ z.
  np.testing.assert_allclose(complex_of(out), complex_of(z), atol=0.2)


def _sharded_and_plain(layer, inputs):
  mesh = make_mesh(data=2, fsdp=2, tensor=2)
  abstract = jax.eval_shape(layer.init, jax.random.key(0), inputs)
  shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(abstract), mesh, DEFAULT_RULES)
  variables = jax.jit(layer.init, out_shardings=shardings)(jax.random.key(0), inputs)
  with use_mesh(mesh):
    sharded = jax.jit(layer.apply)(variables, inputs)
  return sharded, layer.apply(jax.device_get(nn.meta.unbox(variables)), inputs)


def test_encoder_layers_give_the_same_result_on_a_2x2x2_mesh():
  # Regression: XLA (jax 0.10.2, CPU) miscompiled the complex layer on this mesh until the
  # attention layers constrained their inputs' sharding.
  for layer, inputs in (
    (ComplexEncoderLayer(CONFIG), pair(0, 4, 6, 128)),
    (EncoderLayer(CONFIG), pair(0, 4, 6, 128)[0]),
  ):
    sharded, plain = _sharded_and_plain(layer, inputs)
    for s, p in zip(jax.tree.leaves(sharded), jax.tree.leaves(plain), strict=True):
      np.testing.assert_allclose(s, p, atol=1e-5)


def perturbed_maps(params, seed=0):
  """`params` with every Möbius map moved far from the identity (no pole near O(1) inputs)."""
  rng = np.random.default_rng(seed)

  def perturb(path, x):
    if path[-1].key != "coefficients":
      return x
    noise = rng.normal(size=x.shape) * np.array([0.5, 0.5, 0.1, 0.3])[:, None, None]
    return x + noise.astype(x.dtype)

  return jax.tree_util.tree_map_with_path(perturb, params)


@pytest.mark.parametrize("layer_cls", [MobiusSelfAttention, ComplexEncoderLayer])
def test_mobius_layers_gradients_match_finite_differences(layer_cls):
  # float64 end to end, with padding, 1 Möbius head of 2: with respect to the complex input and
  # every parameter (check_grads draws one random direction in all of them together).
  config = LayerConfig(
    hidden_size=8,
    num_heads=2,
    intermediate_size=8,
    num_mobius_heads=1,
    dtype="float64",
    param_dtype="float64",
    attention_implementation="einsum",
  )
  with jax.enable_x64(True):
    x = tuple(np.float64(part) for part in pair(0, 2, 3, 8))
    mask = mj.padding_mask(jnp.array([[1, 1, 1], [1, 1, 0]]))
    layer = layer_cls(config)
    params = perturbed_maps(nn.meta.unbox(jax.jit(layer.init)(jax.random.key(1), x))["params"])

    @jax.jit
    def apply(x, params):
      return layer.apply({"params": params}, x, mask=mask)

    assert apply(x, params)[0].dtype == jnp.float64
    check_grads(apply, (x, params), order=1, modes=("fwd", "rev"))
