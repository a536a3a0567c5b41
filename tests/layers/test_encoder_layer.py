"""The encoder layers (and the Möbius attention in them): sharded against unsharded, and their
gradients against finite differences."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import mobius_jax as mj
from mobius_jax.layers import ComplexEncoderLayer, EncoderLayer, LayerConfig, MobiusSelfAttention
from mobius_jax.sharding import DEFAULT_RULES, make_mesh, use_mesh

CONFIG = LayerConfig(hidden_size=128, num_heads=2, intermediate_size=256)


def pair(seed, *shape):
  return tuple(jax.random.normal(jax.random.key(seed + i), shape) for i in range(2))


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
